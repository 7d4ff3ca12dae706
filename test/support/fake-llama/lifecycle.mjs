// @ts-check
// shutdown: signals, child protocol
import { K } from "./knobs.mjs";
import { breakdown, log, verbosity } from "./log.mjs";
import { S } from "./state.mjs";

export function cleanupLine() {
  log("I", "srv", "operator()", "operator(): cleaning up before exit...");
  if (S.breakdown && verbosity >= 4) breakdown(...S.breakdown);
}
export function beginShutdown() {
  if (S.state === "shutting-down") return;
  S.state = "shutting-down";
  cleanupLine();
  if (S.server) S.server.close();
  for (const f of [...S.shutdownWaiters]) f();
  // idle keep-alive connections are closed; connections with an open generation stay until the client leaves
  const busyConns = new Set([...S.inFlight].map((j) => j.c));
  for (const c of S.conns) if (!busyConns.has(c) && !c.busy) c.sock.destroy();
  maybeExitAfterShutdown();
}
export function maybeExitAfterShutdown() {
  if (S.state !== "shutting-down") return;
  if (S.inFlight.size > 0) return;
  setImmediate(() => process.exit(0));
}
export function onSignal() {
  S.signals++;
  if (S.signals >= 2) {
    process.stderr.write("Received second interrupt, terminating immediately.\n");
    process.exit(1);
  }
  beginShutdown();
}
export function installSignalHandlers() {
  if (!K.ignoreSigterm) process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
}

export function childOut(obj) {
  process.stdout.write(`cmd_child_to_router:state:${JSON.stringify(obj)}\n`);
}
export const fmtProgress = (v) => (Number.isInteger(v) ? v.toFixed(1) : String(Math.round(v * 1000) / 1000));
export function childProgress(v) {
  process.stdout.write(
    `cmd_child_to_router:state:{"state":"loading","payload":{"stages":["text_model"],"current":"text_model","value":${fmtProgress(v)}}}\n`,
  );
}
export function watchStdin() {
  log("I", "srv", "operator()", "child server monitoring thread started, waiting for EOF on stdin...");
  let buf = "";
  process.stdin.setEncoding("utf8");
  process.stdin.on("data", (d) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line === "cmd_router_to_child:exit") {
        log("I", "srv", "operator()", "exit command received, exiting...");
        beginShutdown();
      }
    }
  });
  process.stdin.on("end", () => {
    log("I", "srv", "operator()", "EOF on stdin detected, forcing shutdown...");
    process.exit(1);
  });
  process.stdin.on("error", () => {});
}
