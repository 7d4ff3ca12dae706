import { useEffect, useState } from "preact/hooks";
import { ApiError, getJson, postJson } from "../api.js";
import { bytes } from "../format.js";
import type { ConfigReport, ReloadRecord } from "../../../src/proxy/api-types.js";

export function ConfigView() {
  const [c, set] = useState<ConfigReport | undefined>();
  const [err, setErr] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  const read = () => getJson<ConfigReport>("/api/config").then(set, (e: Error) => setErr(e.message));
  useEffect(() => void read(), []);
  const reload = async () => {
    setBusy(true);
    try {
      await postJson<ReloadRecord>("/api/config/reload", {});
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 422)) setErr((e as Error).message);
    }
    await read();
    setBusy(false);
  };
  if (!c) return <p class={err ? "error" : "muted"}>{err ?? "Reading the configuration…"}</p>;
  const r = c.lastReload;
  return (
    <div class="config" data-testid="config">
      <div class="toolbar">
        <button type="button" onClick={() => void reload()} disabled={busy}>
          {busy ? "Reloading…" : "Reload config"}
        </button>
        <span class="muted small">reads the config file again and rescans the models folder (like SIGHUP)</span>
      </div>
      {r ? (
        <section class={`reload ${r.ok ? "ok" : "failed"}`} data-testid="last-reload">
          <strong>Last reload</strong> {new Date(r.at).toLocaleString()} ({r.trigger}):{" "}
          {r.ok
            ? `added [${r.added.join(", ")}], removed [${r.removed.join(", ")}], changed [${r.changed.join(", ")}]`
            : "failed, the previous models are kept"}
          {[...r.errors, ...r.warnings].map((e) => (
            <p key={e} class={r.ok ? "warn" : "error"}>
              {e}
            </p>
          ))}
        </section>
      ) : null}
      <h3>Settings</h3>
      <dl class="facts wide">
        {Object.entries(c.settings).map(([k, v]) => (
          <>
            <dt key={`k${k}`}>{k}</dt>
            <dd key={`v${k}`}>{show(k, v)}</dd>
          </>
        ))}
      </dl>
      <h3>Models</h3>
      <div class="cards">
        {c.models.map((m) => (
          <article class="card" key={m.name}>
            <h4>{m.name}</h4>
            <p class="small path">{m.path}</p>
            <p class="small">
              {m.source} · ~{bytes(m.estimatedBytes)} · ctx {m.ctx} · {m.endpoints.join(", ")}
              {m.pinned ? " · pinned" : ""}
              {m.preload ? " · preload" : ""}
            </p>
            <details>
              <summary>launch settings</summary>
              <pre>{JSON.stringify(m.server, null, 2)}</pre>
            </details>
          </article>
        ))}
      </div>
    </div>
  );
}

function show(k: string, v: unknown): string {
  if (v === null || v === undefined) return "–";
  if (k === "apiKeys") return `${JSON.stringify(v)} key(s) (not shown)`;
  if (typeof v === "object") {
    const o = v as Record<string, unknown>;
    if ("bytes" in o && "source" in o)
      return `${o.bytes === null ? "unlimited" : bytes(o.bytes as number)} (${typeof o.source === "string" ? o.source : ""})`;
    return Array.isArray(v) ? v.join(", ") || "–" : JSON.stringify(v);
  }
  if (k.endsWith("Bytes") && typeof v === "number") return bytes(v);
  return typeof v === "string" ? v : JSON.stringify(v);
}
