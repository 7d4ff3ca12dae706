import { useEffect, useState } from "preact/hooks";
import { getJson } from "../api.js";
import { bytes, percent } from "../format.js";

interface Gpu {
  index: number;
  vendor: string;
  name: string;
  totalBytes?: number;
  usedBytes?: number;
  freeBytes?: number;
  unifiedMemory: boolean;
  driverVersion?: string;
  architecture?: string;
}

interface Machine {
  platform: string;
  cpu: {
    model: string;
    arch: string;
    logicalCores: number;
    physicalCores?: number;
    availableCores: number;
    simd: string[];
  };
  ram: { totalBytes: number; availableBytes: number; source: string; cgroupLimitBytes?: number };
  gpus: Gpu[];
  accelerator: string;
  cudaDriverVersion?: string;
  notes: string[];
}

interface SystemResponse {
  machine: Machine | { error: string };
  llamaServer: { path: string; version?: string; backend?: string; builtWith?: string } | { error: string } | null;
}

export function MachineView() {
  const [s, set] = useState<SystemResponse | undefined>();
  const [err, setErr] = useState<string | undefined>();
  const read = (fresh: boolean) =>
    getJson<SystemResponse>(`/api/system${fresh ? "?fresh=1" : ""}`).then(set, (e: Error) => setErr(e.message));
  useEffect(() => void read(false), []);
  if (err) return <p class="error">{err}</p>;
  if (!s) return <p class="muted">Probing the machine…</p>;
  const m = s.machine;
  return (
    <div class="machine" data-testid="machine">
      <div class="toolbar">
        <button type="button" onClick={() => void read(true)}>
          Read again
        </button>
      </div>
      {"error" in m ? (
        <p class="error">{m.error}</p>
      ) : (
        <div class="cards">
          <article class="card">
            <h3>CPU</h3>
            <p>{m.cpu.model}</p>
            <dl class="facts">
              <dt>cores</dt>
              <dd>
                {m.cpu.physicalCores ?? "?"} physical · {m.cpu.logicalCores} logical · {m.cpu.availableCores} usable
              </dd>
              <dt>platform</dt>
              <dd>
                {m.platform} / {m.cpu.arch}
              </dd>
              <dt>features</dt>
              <dd class="small">{m.cpu.simd.join(" ") || "–"}</dd>
              <dt>accelerator</dt>
              <dd>{m.accelerator}</dd>
            </dl>
          </article>
          <article class="card">
            <h3>RAM</h3>
            <Meter used={m.ram.totalBytes - m.ram.availableBytes} total={m.ram.totalBytes} />
            <p class="small">
              {bytes(m.ram.availableBytes)} available of {bytes(m.ram.totalBytes)}
              {m.ram.cgroupLimitBytes ? ` · container limit ${bytes(m.ram.cgroupLimitBytes)}` : ""}
            </p>
          </article>
          {m.gpus.length === 0 ? (
            <article class="card">
              <h3>GPU</h3>
              <p class="muted">None found.</p>
            </article>
          ) : (
            m.gpus.map((g) => (
              <article class="card" key={`${g.vendor}${g.index}`}>
                <h3>
                  GPU {g.index}: {g.name}
                </h3>
                {g.totalBytes ? (
                  <>
                    <Meter used={g.usedBytes ?? g.totalBytes - (g.freeBytes ?? 0)} total={g.totalBytes} />
                    <p class="small">
                      {bytes(g.freeBytes)} free of {bytes(g.totalBytes)}
                      {g.unifiedMemory ? " (unified memory)" : " VRAM"}
                    </p>
                  </>
                ) : null}
                <p class="small muted">
                  {g.vendor}
                  {g.architecture ? ` · ${g.architecture}` : ""}
                  {g.driverVersion ? ` · driver ${g.driverVersion}` : ""}
                </p>
              </article>
            ))
          )}
          <article class="card">
            <h3>llama-server</h3>
            {s.llamaServer === null ? (
              <p class="muted">Not a llama-server runner.</p>
            ) : "error" in s.llamaServer ? (
              <p class="error">{s.llamaServer.error}</p>
            ) : (
              <dl class="facts">
                <dt>binary</dt>
                <dd class="path">{s.llamaServer.path}</dd>
                <dt>version</dt>
                <dd>{s.llamaServer.version ?? "unknown"}</dd>
                {s.llamaServer.backend ? (
                  <>
                    <dt>backend</dt>
                    <dd>{s.llamaServer.backend}</dd>
                  </>
                ) : null}
                {s.llamaServer.builtWith ? (
                  <>
                    <dt>built</dt>
                    <dd class="small">{s.llamaServer.builtWith}</dd>
                  </>
                ) : null}
              </dl>
            )}
          </article>
        </div>
      )}
      {"notes" in m && m.notes.length > 0 ? (
        <ul class="notes">
          {m.notes.map((n) => (
            <li key={n}>{n}</li>
          ))}
        </ul>
      ) : null}
    </div>
  );
}

function Meter({ used, total }: { used: number; total: number }) {
  return (
    <div class="bar" role="meter" aria-valuemin={0} aria-valuemax={total} aria-valuenow={used}>
      <span class="fill" style={{ width: `${percent(used, total)}%` }} />
    </div>
  );
}
