import { useEffect, useMemo, useState } from "preact/hooks";
import { follow } from "../api.js";
import { clock, ms, num } from "../format.js";
import type { ActivityRecord } from "../../../src/proxy/api-types.js";

const KEEP = 1000;

export function ActivityView({ models }: { models: string[] }) {
  const [records, setRecords] = useState<ActivityRecord[]>([]);
  const [model, setModel] = useState("");
  useEffect(() => {
    const ac = new AbortController();
    let first = true;
    follow(
      `/api/activity?follow=1&limit=${KEEP}`,
      (data) => {
        const r = JSON.parse(data) as ActivityRecord;
        setRecords((p) => {
          const next = p.length > 0 && p[p.length - 1]!.seq >= r.seq ? p.filter((x) => x.seq < r.seq) : p.slice();
          next.push(r);
          return next.length > KEEP ? next.slice(next.length - KEEP) : next;
        });
      },
      ac.signal,
      () => {
        // a reconnect sends the backlog again: start over
        if (!first) setRecords([]);
        first = false;
      },
    );
    return () => ac.abort();
  }, []);
  const shown = useMemo(() => (model ? records.filter((r) => r.model === model) : records), [records, model]);
  const names = useMemo(() => [...new Set([...models, ...records.map((r) => r.model)])].sort(), [models, records]);
  return (
    <div class="activity">
      <div class="toolbar">
        <label>
          Model{" "}
          <select value={model} onChange={(e) => setModel((e.target as HTMLSelectElement).value)}>
            <option value="">all</option>
            {names.map((n) => (
              <option key={n} value={n}>
                {n}
              </option>
            ))}
          </select>
        </label>
        <span class="muted small">
          {shown.length} request(s){records.length >= KEEP ? ` (the last ${KEEP})` : ""}
        </span>
      </div>
      <Chart records={shown} />
      {shown.length === 0 ? (
        <p class="empty">No requests yet. They show here as they finish.</p>
      ) : (
        <div class="table-wrap">
          <table data-testid="activity">
            <thead>
              <tr>
                <th>time</th>
                <th>model</th>
                <th>endpoint</th>
                <th>status</th>
                <th title="request to llama-server's first byte, includes any load wait">first byte</th>
                <th>duration</th>
                <th>tokens/s</th>
                <th>prompt</th>
                <th>generated</th>
                <th>cached</th>
              </tr>
            </thead>
            <tbody>
              {shown
                .slice(-200)
                .reverse()
                .map((r) => (
                  <tr key={r.seq}>
                    <td>{clock(r.at)}</td>
                    <td>{r.model}</td>
                    <td>
                      <code>
                        {r.method} {r.path}
                      </code>
                    </td>
                    <td class={r.status >= 400 ? "bad" : "good"}>{r.status}</td>
                    <td>{ms(r.ttfbMs)}</td>
                    <td>{ms(r.durationMs)}</td>
                    <td>{num(r.tokensPerSecond, 1)}</td>
                    <td>{num(r.promptTokens)}</td>
                    <td>{num(r.completionTokens)}</td>
                    <td>{num(r.cachedTokens)}</td>
                  </tr>
                ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}

/** Tokens/s and latency of the shown requests over time (two lines, each on its own scale). */
function Chart({ records }: { records: ActivityRecord[] }) {
  const W = 600;
  const H = 140;
  const pad = 6;
  const pts = records.slice(-300);
  if (pts.length < 2) return null;
  const t0 = pts[0]!.at;
  const t1 = Math.max(pts[pts.length - 1]!.at, t0 + 1);
  const x = (t: number) => pad + ((t - t0) / (t1 - t0)) * (W - 2 * pad);
  const line = (vals: Array<[number, number]>) => {
    const max = Math.max(...vals.map((v) => v[1]), 1e-9);
    return vals
      .map(
        ([t, v], i) => `${i === 0 ? "M" : "L"}${x(t).toFixed(1)},${(H - pad - (v / max) * (H - 2 * pad)).toFixed(1)}`,
      )
      .join(" ");
  };
  const tps = pts.filter((r) => r.tokensPerSecond !== null).map((r): [number, number] => [r.at, r.tokensPerSecond!]);
  const lat = pts.map((r): [number, number] => [r.at, r.durationMs]);
  const maxTps = Math.max(0, ...tps.map((v) => v[1]));
  const maxLat = Math.max(0, ...lat.map((v) => v[1]));
  return (
    <figure class="chart">
      <svg viewBox={`0 0 ${W} ${H}`} preserveAspectRatio="none" role="img" aria-label="tokens per second and latency">
        <path
          class="grid"
          d={`M${pad},${H / 2} H${W - pad} M${pad},${pad} H${W - pad} M${pad},${H - pad} H${W - pad}`}
        />
        {tps.length > 1 ? <path class="tps" d={line(tps)} /> : null}
        <path class="lat" d={line(lat)} />
      </svg>
      <figcaption>
        <span class="key tps">tokens/s (max {num(maxTps, 1)})</span>
        <span class="key lat">latency (max {ms(maxLat)})</span>
      </figcaption>
    </figure>
  );
}
