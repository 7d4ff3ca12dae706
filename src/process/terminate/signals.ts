/** Sends a signal to a process group (POSIX) or the process (Windows). Returns false if it was already gone. */
export function signalGroup(pid: number, signal: NodeJS.Signals): boolean {
  try {
    if (process.platform === "win32") process.kill(pid, signal);
    else process.kill(-pid, signal);
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ESRCH") return false;
    if (code === "EPERM") return false;
    // the group may be gone while the leader lingers as a zombie: try the pid itself
    try {
      process.kill(pid, signal);
      return true;
    } catch {
      return false;
    }
  }
}

/** Liveness by `kill(pid, 0)`: ESRCH = gone, EPERM = alive but not ours. */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}
