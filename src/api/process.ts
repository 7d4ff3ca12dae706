// gglib-runtime/process: running processes: exec, PATH lookup, signals and graceful stop, pidfiles, ports.
export * from "../process/exec.js";
export * from "../process/which.js";
export * from "../process/terminate/signals.js";
export * from "../process/terminate/graceful-stop.js";
export * from "../process/pidfile.js";
export * from "../process/ports.js";
export * from "../process/child-protocol.js";
export * from "../process/log-buffer.js";
