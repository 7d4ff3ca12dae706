import { createServer } from "node:net";
import { GglibError } from "../core/errors.js";

/** True when nothing listens on host:port right now (we could bind it). */
export function isPortFree(port: number, host = "127.0.0.1"): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once("error", () => resolve(false));
    srv.listen({ port, host, exclusive: true }, () => {
      srv.close(() => resolve(true));
    });
  });
}

/**
 * First free port at or above `base` that is not in `exclude` (ports we already handed out). There is a race
 * between this check and llama-server's bind; the supervisor handles that by retrying on a bind failure.
 */
export async function findFreePort(
  base: number,
  opts: { exclude?: ReadonlySet<number>; host?: string; span?: number } = {},
): Promise<number> {
  const span = opts.span ?? 1000;
  if (!Number.isInteger(base) || base < 1 || base > 65535) {
    throw new GglibError("invalid_config", `Invalid base port ${base}; expected 1-65535.`);
  }
  const last = Math.min(65535, base + span - 1);
  for (let p = base; p <= last; p++) {
    if (opts.exclude?.has(p)) continue;
    if (await isPortFree(p, opts.host)) return p;
  }
  throw new GglibError("no_free_port", `No free port in ${base}-${last} on ${opts.host ?? "127.0.0.1"}.`, {
    hint: "Stop what holds those ports or choose another base port (--base-port).",
  });
}
