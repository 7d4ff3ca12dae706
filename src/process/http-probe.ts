import { request } from "node:http";

export type HealthProbe =
  | { kind: "ok" }
  | { kind: "loading" }
  | { kind: "http-error"; status: number; body: string }
  | { kind: "unreachable"; error: string };

/**
 * One GET /health with a timeout. llama-server answers 503 `Loading model` while loading, 200 {"status":"ok"} when
 * ready (fixtures 01, 06-while-loading). A fresh connection each time (agent: false) so no socket is left behind.
 */
export function probeHealth(url: string, timeoutMs = 2000): Promise<HealthProbe> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (r: HealthProbe) => {
      if (done) return;
      done = true;
      resolve(r);
    };
    const req = request(
      `${url}/health`,
      { method: "GET", agent: false, timeout: timeoutMs, headers: { connection: "close" } },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => {
          if (body.length < 4096) body += d;
        });
        res.on("end", () => {
          const status = res.statusCode ?? 0;
          if (status === 200) finish({ kind: "ok" });
          else if (status === 503 && body.includes("Loading model")) finish({ kind: "loading" });
          else finish({ kind: "http-error", status, body });
        });
        res.on("error", (e) => finish({ kind: "unreachable", error: e.message }));
      },
    );
    req.on("timeout", () => {
      req.destroy();
      finish({ kind: "unreachable", error: `no answer within ${timeoutMs} ms` });
    });
    req.on("error", (e: NodeJS.ErrnoException) => finish({ kind: "unreachable", error: e.code ?? e.message }));
    req.end();
  });
}
