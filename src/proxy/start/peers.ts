/**
 * The peers (src/peers/), when configured: their clients, the router that places requests across this host and
 * them, and what the start report says of them.
 */
import type { PeerSpec } from "../../peers/config.js";
import { PeerClient } from "../../peers/client.js";
import type { ModelController } from "../controller.js";
import { PeerRouter } from "../peer-router.js";
import type { Budget, StartReport } from "./options.js";

/**
 * The peers (src/peers/), when configured: their clients, a first discovery of each (bounded by its health
 * timeout, run side by side), then polling; the router that places requests across this host and them.
 */
export async function startPeers(
  specs: readonly PeerSpec[],
  controller: ModelController,
  budget: Budget,
  log: (line: string) => void,
): Promise<PeerRouter | undefined> {
  if (specs.length === 0) return undefined;
  const clients = specs.map(
    (s) =>
      new PeerClient(s, log, (c) =>
        controller.publish({ type: "peer", peer: c.name, up: c.state.up, models: c.models().length, at: Date.now() }),
      ),
  );
  await Promise.all(clients.map((c) => c.start()));
  return new PeerRouter(clients, controller, () =>
    budget.bytes === undefined ? undefined : Math.max(0, budget.bytes - controller.usedBytes()),
  );
}

/** The peers as their first discovery found them, their name clashes, and a warning for each one down. */
export function reportPeers(report: StartReport, peers: PeerRouter): void {
  report.peers = peers.status().map((p) => ({
    name: p.name,
    url: p.url,
    kind: p.kind,
    up: p.up,
    models: p.models.map((m) => m.id),
    error: p.lastError,
  }));
  report.clashes.push(...peers.clashes());
  for (const p of report.peers) if (!p.up) report.warnings.push(`peer ${p.name} is down: ${p.error ?? "?"}`);
}
