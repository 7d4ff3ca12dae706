import { useState } from "preact/hooks";
import { postJson } from "../api.js";
import { bytes, duration, percent } from "../format.js";
import type { ModelsState } from "../store.js";
import { useTick } from "../store.js";
import { archLine, contextFacts, swaFullFact } from "../context.js";
import type { ModelStatus, ModelStatusReport, PeerStatus } from "../../../src/proxy/api-types.js";

const STATE_LABEL: Record<ModelStatus, string> = {
  unloaded: "unloaded",
  pending: "waiting for room",
  loading: "loading",
  ready: "ready",
  draining: "draining",
  stopping: "stopping",
  failed: "failed",
  stuck: "stuck (stop failed)",
};

export function BudgetBar({ s }: { s: ModelsState }) {
  const b = s.status?.budget;
  if (!b) return null;
  const models = s.status?.models ?? [];
  const resident = models.filter((m) => m.state !== "unloaded" && m.state !== "failed");
  return (
    <section class="budget" aria-label="Memory budget">
      <div class="budget-head">
        <strong>Memory</strong>
        <span>
          {bytes(b.usedBytes)} of {b.bytes === null ? "unlimited" : bytes(b.bytes)}
          <span class="muted"> · {b.source}</span>
          {s.status?.maxModels ? <span class="muted"> · at most {s.status.maxModels} model(s)</span> : null}
        </span>
      </div>
      {b.bytes !== null ? (
        <div class="bar stacked" role="img" aria-label={`${bytes(b.usedBytes)} of ${bytes(b.bytes)} used`}>
          {resident.map((m, i) => (
            <span
              key={m.name}
              class={`seg c${i % 6}`}
              style={{ width: `${percent(m.measuredBytes ?? m.estimatedBytes, b.bytes!)}%` }}
              title={`${m.name}: ${bytes(m.measuredBytes ?? m.estimatedBytes)}`}
            />
          ))}
        </div>
      ) : null}
      {resident.length > 0 ? (
        <ul class="legend">
          {resident.map((m, i) => (
            <li key={m.name}>
              <span class={`dot c${i % 6}`} /> {m.name} {bytes(m.measuredBytes ?? m.estimatedBytes)}
              {m.measuredBytes === undefined ? <span class="muted"> (estimate)</span> : null}
            </li>
          ))}
        </ul>
      ) : null}
    </section>
  );
}

export function ModelsView({ s, budget, refresh }: { s: ModelsState; budget: number | null; refresh: () => void }) {
  const now = useTick();
  const models = s.status?.models ?? [];
  if (!s.status) return <p class="muted">{s.error ?? "Reading the models…"}</p>;
  const peers = s.status.peers;
  if (models.length === 0 && !peers?.length)
    return (
      <p class="empty">
        No models. Start the proxy with <code>--models-dir DIR</code> or <code>--config FILE</code>, or add models with{" "}
        <code>gglib models add</code>.
      </p>
    );
  const elapsed = (now - s.readAt) / 1000;
  const cards = (
    <div class="cards" data-testid="models">
      {models.map((m) => (
        <ModelCard
          key={m.name}
          here={peers !== undefined}
          m={m}
          source={s.sources.get(m.name)?.source}
          ctx={s.sources.get(m.name)?.ctx}
          crash={s.crashes.get(m.name)}
          elapsed={Math.max(0, elapsed)}
          budget={budget}
          refresh={refresh}
        />
      ))}
    </div>
  );
  if (!peers) return cards;
  return (
    <>
      {cards}
      <PeersView peers={peers} clashes={s.status.nameClashes ?? []} />
    </>
  );
}

const PEER_STATE: Record<string, string> = {
  ready: "ready",
  loading: "loading",
  idle: "unloaded",
  failed: "failed",
  unknown: "unloaded",
};

/** The other hosts: up or down, their free memory, and the models that live there (their ids here). */
function PeersView({ peers, clashes }: { peers: PeerStatus[]; clashes: string[] }) {
  return (
    <section aria-label="Peers" data-testid="peers">
      <h2>Other hosts (peers)</h2>
      {clashes.map((c) => (
        <p key={c} class="error small">
          name clash: {c}
        </p>
      ))}
      <div class="cards">
        {peers.map((p) => (
          <article key={p.name} class={`card state-${p.up ? "ready" : "failed"}`} data-peer={p.name}>
            <header>
              <h3>{p.name}</h3>
              <span class={`badge ${p.up ? "ready" : "failed"}`} data-testid="peer-state">
                {p.up ? "up" : "down"}
              </span>
              {p.kind ? <span class="badge">{p.kind}</span> : null}
            </header>
            <p class="muted small">{p.url}</p>
            {!p.up && p.lastError ? (
              <p class="error small" role="alert">
                {p.lastError}
              </p>
            ) : null}
            <dl class="facts">
              <dt>free memory</dt>
              <dd>
                {p.freeBytes !== null ? bytes(p.freeBytes) : "–"}
                {p.budgetBytes !== null ? <span class="muted"> of {bytes(p.budgetBytes)}</span> : null}
              </dd>
              <dt>requests</dt>
              <dd>
                {Object.entries(p.requests)
                  .map(([k, v]) => `${v} × ${k}`)
                  .join(" · ") || "–"}
              </dd>
            </dl>
            <ul class="peer-models">
              {p.models.map((m) => (
                <li key={m.id} data-model={m.id}>
                  <code>{m.id}</code> <span class={`badge ${PEER_STATE[m.state] ?? "unloaded"}`}>{m.state}</span>
                </li>
              ))}
            </ul>
          </article>
        ))}
      </div>
    </section>
  );
}

function ModelCard(p: {
  /** Peers are configured: say that this model lives on this host. */
  here: boolean;
  m: ModelStatusReport;
  source: string | undefined;
  ctx: number | undefined;
  crash: { reason: string; at: number } | undefined;
  elapsed: number;
  budget: number | null;
  refresh: () => void;
}) {
  const { m } = p;
  const [busy, setBusy] = useState<string | undefined>();
  const [err, setErr] = useState<string | undefined>();
  const act = (what: string, path: string, body: Record<string, unknown>) => {
    setBusy(what);
    setErr(undefined);
    postJson(path, { model: m.name, ...body })
      .catch((e: Error) => setErr(e.message))
      .finally(() => {
        setBusy(undefined);
        p.refresh();
      });
  };
  const running = m.state === "ready" || m.state === "draining" || m.state === "loading" || m.state === "pending";
  const uptime = m.uptimeS !== undefined ? m.uptimeS + p.elapsed : undefined;
  const ttl =
    m.ttlLeftS !== undefined ? (m.inFlight > 0 ? m.ttlLeftS : Math.max(0, m.ttlLeftS - p.elapsed)) : undefined;
  const memMax = Math.max(p.budget ?? 0, m.estimatedBytes, m.measuredBytes ?? 0);
  const crashedNow = m.state === "unloaded" && m.crashes > 0 && m.lastError;
  return (
    <article class={`card state-${m.state}`} data-model={m.name} aria-label={`Model ${m.name}`}>
      <header>
        <h3>{m.name}</h3>
        <span class={`badge ${m.state}`} data-testid="state">
          {STATE_LABEL[m.state] ?? m.state}
        </span>
        {m.pinned ? <span class="badge pin">pinned</span> : null}
        {p.here ? <span class="badge">this host</span> : null}
      </header>
      {m.aliases.length > 0 ? <p class="muted small">aka {m.aliases.join(", ")}</p> : null}
      {m.presets?.length ? (
        <p class="muted small" data-testid="presets">
          presets: {m.presets.join(", ")}
        </p>
      ) : null}
      {m.state === "loading" || m.state === "pending" ? (
        <div class="progress" data-testid="progress">
          <div
            class="bar"
            role="progressbar"
            aria-valuemin={0}
            aria-valuemax={100}
            aria-valuenow={Math.round((m.progress ?? 0) * 100)}
            aria-label={`Loading ${m.name}`}
          >
            <span class="fill" style={{ width: `${Math.round((m.progress ?? 0) * 100)}%` }} />
          </div>
          <span class="small">{Math.round((m.progress ?? 0) * 100)}%</span>
        </div>
      ) : null}
      {(m.state === "failed" || m.state === "stuck") && m.lastError ? (
        <p class="error" data-testid="reason" role="alert">
          {m.lastError}
        </p>
      ) : null}
      {crashedNow ? (
        <p class="error" data-testid="reason">
          crashed: {m.lastError}
          {p.crash ? <span class="muted"> at {new Date(p.crash.at).toLocaleTimeString()}</span> : null}; restarts on the
          next request
        </p>
      ) : null}
      <dl class="facts">
        {m.arch ? (
          <>
            <dt>architecture</dt>
            <dd data-testid="arch">{archLine(m.arch)}</dd>
          </>
        ) : null}
        <dt>source</dt>
        <dd>{p.source ?? "–"}</dd>
        {m.pid !== undefined ? (
          <>
            <dt>pid / port</dt>
            <dd>
              {m.pid} / {m.port}
            </dd>
          </>
        ) : null}
        {uptime !== undefined ? (
          <>
            <dt>uptime</dt>
            <dd>{duration(uptime)}</dd>
          </>
        ) : null}
        <dt>requests</dt>
        <dd>
          {m.inFlight} in flight · {m.queued} queued
        </dd>
        {ttl !== undefined ? (
          <>
            <dt>TTL left</dt>
            <dd>{duration(ttl)}</dd>
          </>
        ) : null}
        {p.ctx ? (
          <>
            <dt>context</dt>
            <dd>{p.ctx.toLocaleString()} tokens</dd>
          </>
        ) : null}
        <dt>loads / crashes</dt>
        <dd>
          {m.loads} / {m.crashes}
        </dd>
        {m.rpc ? (
          <>
            <dt>RPC split</dt>
            <dd data-testid="rpc-split">
              this host {bytes(m.rpc.measured?.localBytes ?? m.rpc.planned.localBytes)}
              {m.rpc.workers.map((w) => (
                <span key={w.endpoint} class={w.state === "ready" || w.state === "unknown" ? "" : "error"}>
                  {" · "}
                  {w.endpoint} {bytes(w.measuredBytes ?? w.plannedBytes ?? 0)}
                  <span class="muted">
                    {" "}
                    ({w.state}
                    {w.freeBytes !== undefined ? `, ${bytes(w.freeBytes)} free at start` : ""})
                  </span>
                </span>
              ))}
              {m.rpc.measured ? null : <span class="muted"> (planned)</span>}
            </dd>
          </>
        ) : null}
        {m.swaFull ? (
          <>
            <dt>--swa-full</dt>
            <dd data-testid="swa-full" title="the full sliding-window cache, so a restored context is reused">
              {swaFullFact(m.swaFull)}
            </dd>
          </>
        ) : null}
        {m.context ? (
          <>
            <dt>saved context</dt>
            <dd data-testid="saved-context">
              {contextFacts(m.context).join(" · ")}
              {m.context.enabled && m.context.caveat ? (
                <div class="small muted" data-testid="context-caveat">
                  {m.context.caveat}
                </div>
              ) : null}
            </dd>
          </>
        ) : null}
      </dl>
      <div class="mem" title="estimated vs measured memory">
        <div class="mem-row">
          <span class="small muted">estimate</span>
          <div class="bar thin">
            <span class="fill est" style={{ width: `${percent(m.estimatedBytes, memMax)}%` }} />
          </div>
          <span class="small">{bytes(m.estimatedBytes)}</span>
        </div>
        {m.repack ? (
          <div class="small muted repack" title="weights llama.cpp copies into this CPU's extra buffers">
            incl. repacked weights:{" "}
            {Object.entries(m.repack.buffers)
              .map(([b, n]) => `${b} ${bytes(n)}`)
              .join(" + ")}
          </div>
        ) : null}
        <div class="mem-row">
          <span class="small muted">measured</span>
          <div class="bar thin">
            <span class="fill meas" style={{ width: `${percent(m.measuredBytes ?? 0, memMax)}%` }} />
          </div>
          <span class="small">{m.measuredBytes !== undefined ? bytes(m.measuredBytes) : "–"}</span>
        </div>
      </div>
      <footer class="actions">
        <button
          type="button"
          disabled={busy !== undefined || m.state === "ready" || m.state === "loading"}
          onClick={() => act("load", "/models/load", {})}
        >
          {busy === "load" ? "Loading…" : "Load"}
        </button>
        <button
          type="button"
          disabled={busy !== undefined || !running}
          onClick={() => act("unload", "/models/unload", {})}
        >
          Unload
        </button>
        <button
          type="button"
          aria-pressed={m.pinned}
          disabled={busy !== undefined}
          onClick={() => act("pin", "/models/pin", { pinned: !m.pinned })}
        >
          {m.pinned ? "Unpin" : "Pin"}
        </button>
      </footer>
      {err ? (
        <p class="error small" role="alert">
          {err}
        </p>
      ) : null}
    </article>
  );
}
