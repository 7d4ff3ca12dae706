/**
 * A 20-turn coding-agent session replayed through gglib, a direct llama-server and llama.cpp's router mode
 * (issue 23): first-token time and reused prompt tokens (llama-server's `timings.cache_n`, or the API's cached
 * count) per turn, and the same for turns that follow a swap away and back (gglib restores the conversation from
 * its context cache; the router loads the model again and prefills the whole history).
 *
 * Agent-shaped: turn 1 is the request each real CLI sends (Claude Code `claude -p`, Codex `codex exec`, opencode
 * `opencode run`, all from node_modules/.bin, wired by src/agents/agents.ts as `gglib launch` does), recorded by a
 * stand-in server that answers every request with an error; later turns grow that request's history as the agent
 * does, in its API's own shape: every odd turn ends in a tool call whose result the next turn carries
 * (test/support/agent-session.ts). The assistant's turns are fixed text, so every server gets the same prompts.
 *
 * One tiny random-weight model (test/support/tiny-models.ts, 65,536 tokens of context, one slot, a template that
 * takes tools; one character is about one token, so prompts are ~2.5× longer than on a real model: 20–35k tokens,
 * prefilled in 14–53 s on 2 busy cores) run with the same llama-server flags by all three: gglib's own, read from its
 * llama-server's command line. gglib: `--max-models 1`, context cache on; router: `--models-max 1`; the swap is a
 * one-token request for a second tiny model.
 *
 * `--sessions N` (standalone only): N sessions of the first shape side by side on gglib, the model run with 4 slots
 * (llama-server's default, one KV cache shared by the slots), 3 turns each at once: reuse per session when N ≤ 4
 * and when N > 4.
 *
 *   npx tsx bench/agent-session.ts [--agents claude,codex,opencode] [--turns 20] [--swaps 2] [--sessions N] [--json]
 *   (also section "8 agent session" of bench/all.ts; results in bench/results/agent-session-latest.{md,json})
 */
import { createServer, type IncomingMessage, type Server } from "node:http";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join, relative } from "node:path";
import { AGENTS, agentLaunch, childEnv, type AgentName } from "../src/agents/agents.js";
import { LlamaServerRunner } from "../src/runner/llama-server-runner.js";
import { startProxy, type RunningProxy } from "../src/proxy/index.js";
import { writeTinyModel } from "../test/support/tiny-models.js";
import {
  SHAPE_PATH,
  replayable,
  sessionBodies,
  streamTurn,
  type AgentShape,
  type StreamedTurn,
} from "../test/support/agent-session.js";
import {
  QUICK,
  ROOT,
  freePort,
  killLeftovers,
  log,
  machine,
  median,
  row,
  runStandalone,
  spawnTracked,
  spread,
  stopTracked,
  waitHttp,
  type Row,
  startCachedProxy,
} from "./lib.js";
import { realLlamaServer } from "./swap.js";

const SECTION = "8 agent session";
const CTX = 65536;
const MAX_TOKENS = 4;

type Json = Record<string, unknown>;

export const AGENT_SHAPE: Readonly<Record<AgentName, AgentShape>> = {
  claude: "anthropic-messages",
  codex: "openai-responses",
  opencode: "openai-chat",
};

const FIRST_ARGS: Readonly<Record<AgentName, string[]>> = {
  claude: ["-p", "turn 1: list the files"],
  codex: ["exec", "--skip-git-repo-check", "turn 1: list the files"],
  opencode: ["run", "turn 1: list the files"],
};

const arg = (name: string): string | undefined =>
  process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : undefined;

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let s = "";
    req.on("data", (d: Buffer) => (s += d.toString()));
    req.on("end", () => resolve(s));
  });
}

/**
 * The first request the real agent CLI sends on its API with its tools (its system prompt, tools, environment and
 * the question), caught by a stand-in that answers everything with an error; the agent is stopped once it is caught.
 */
export async function recordFirstRequest(agent: AgentName, dir: string, timeoutMs = 90_000): Promise<Json> {
  const shape = AGENT_SHAPE[agent];
  let caught: (b: Json) => void = () => {};
  const got = new Promise<Json>((r) => (caught = r));
  const server: Server = createServer((req, res) => {
    void readBody(req).then((text) => {
      const path = (req.url ?? "").split("?")[0]!;
      if (req.method === "GET" && /\/models$/.test(path)) {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ object: "list", data: [{ id: "agent", object: "model", owned_by: "gglib" }] }));
        return;
      }
      if (req.method === "POST" && path === SHAPE_PATH[shape]) {
        try {
          const body = JSON.parse(text) as Json;
          if (Array.isArray(body.tools) && body.tools.length > 0) caught(body);
        } catch {
          // not JSON: not the request looked for
        }
      }
      res.writeHead(503, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { type: "overloaded_error", message: "recording stand-in" } }));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  const home = join(dir, `rec-${agent}`);
  const work = join(home, "work");
  mkdirSync(join(home, ".codex"), { recursive: true });
  mkdirSync(work, { recursive: true });
  const launch = agentLaunch(agent, {
    proxyUrl: `http://127.0.0.1:${port}`,
    model: "agent",
    ctx: CTX,
    args: FIRST_ARGS[agent],
    maxOutput: 32,
  });
  const env = childEnv(
    {
      PATH: `${join(ROOT, "node_modules/.bin")}${delimiter}${process.env.PATH ?? ""}`,
      HOME: home,
      XDG_CONFIG_HOME: join(home, ".config"),
      XDG_DATA_HOME: join(home, ".local/share"),
      XDG_CACHE_HOME: join(home, ".cache"),
      XDG_STATE_HOME: join(home, ".local/state"),
      CODEX_HOME: join(home, ".codex"),
      NO_COLOR: "1",
    },
    launch,
  );
  const binary = join(ROOT, "node_modules/.bin", AGENTS[agent].binary);
  if (!existsSync(binary)) {
    await new Promise<void>((r) => server.close(() => r()));
    throw new Error(`no ${binary}: the devDependency ${AGENTS[agent].npmPackage} is not installed (npm ci)`);
  }
  const child = spawnTracked(binary, launch.args, { env, cwd: work });
  try {
    return await Promise.race([
      got,
      new Promise<never>((_, reject) =>
        setTimeout(
          () => reject(new Error(`${agent} sent no ${SHAPE_PATH[shape]} request with tools in ${timeoutMs} ms`)),
          timeoutMs,
        ),
      ),
      new Promise<never>((_, reject) =>
        child.once("exit", (c) =>
          setTimeout(() => reject(new Error(`${agent} exited (${c}) before its request was caught`)), 500),
        ),
      ),
    ]);
  } finally {
    await stopTracked(child, 2_000);
    await new Promise<void>((r) => server.close(() => r()));
  }
}

interface Target {
  name: "gglib" | "direct" | "router";
  url: string;
  /** Swap the agent's model out (a request for the other model); absent: no swap on this target. */
  swapAway?: () => Promise<void>;
  stop(): Promise<void>;
}

interface TurnResult extends Omit<StreamedTurn, "text"> {
  turn: number;
  afterSwap: boolean;
}

async function oneToken(url: string, model: string): Promise<void> {
  const r = await fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model, messages: [{ role: "user", content: "hi" }], max_tokens: 1 }),
  });
  const t = await r.text();
  if (r.status !== 200) throw new Error(`${model} at ${url}: HTTP ${r.status} ${t.slice(0, 300)}`);
}

/** The flags gglib gave its llama-server, less the model, the address and the slot folder (from /proc). */
function sharedFlags(pid: number): string[] {
  const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean).slice(1);
  const drop = new Set(["-m", "--model", "--port", "--host", "--slot-save-path", "-a", "--alias"]);
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (drop.has(argv[i]!)) i++;
    else out.push(argv[i]!);
  }
  return out;
}

/**
 * The session on every target, turn by turn: each turn goes to the targets one after the other (the order turning
 * each turn), so that a change in the machine's load falls on all of them alike. A turn after `turns` follows a
 * swap away and back (on the targets that swap).
 */
async function runSession(targets: Target[], shape: AgentShape, bodies: Json[], turns: number) {
  const out = Object.fromEntries(targets.map((t) => [t.name, [] as TurnResult[]])) as Record<
    Target["name"],
    TurnResult[]
  >;
  for (let i = 0; i < bodies.length; i++) {
    const afterSwap = i >= turns;
    for (let k = 0; k < targets.length; k++) {
      const target = targets[(i + k) % targets.length]!;
      if (afterSwap) {
        if (!target.swapAway) continue;
        await target.swapAway();
      }
      const t = await streamTurn(target.url, shape, bodies[i]!);
      if (t.status !== 200) throw new Error(`${target.name} turn ${i + 1}: HTTP ${t.status} ${t.text}`);
      const { text: _t, ...rest } = t;
      out[target.name].push({ turn: i + 1, afterSwap, ...rest });
    }
  }
  return out;
}

export interface ShapeResult {
  agent: AgentName;
  shape: AgentShape;
  firstPromptTokens: number | null;
  flags: string[];
  results: Record<Target["name"], TurnResult[]>;
}

export async function benchAgentSession(
  opts: {
    quick?: boolean;
    agents?: AgentName[];
    turns?: number;
    swaps?: number;
    onShape?: (s: ShapeResult) => void;
  } = {},
): Promise<{ rows: Row[]; shapes: ShapeResult[] }> {
  const quick = opts.quick ?? QUICK;
  // one shape by default (Codex's, the shortest prompt): the whole section stays within ~5 minutes here
  const agents = opts.agents ?? ["codex"];
  const turns = opts.turns ?? (quick ? 10 : 20);
  const swaps = opts.swaps ?? (quick ? 1 : 2);
  const bin = realLlamaServer();
  if (!bin)
    return {
      rows: [
        row({
          section: SECTION,
          metric: "agent session",
          value: NaN,
          baseline: NaN,
          baselineName: "direct llama-server",
          unit: "ms",
          reps: 0,
          note: "NOT MEASURED: no real llama-server (npm run rig:llama-server builds one, or set GGLIB_BENCH_LLAMA_SERVER)",
        }),
      ],
      shapes: [],
    };
  const dir = mkdtempSync(join(tmpdir(), "gglib-bench-agent-session-"));
  const rows: Row[] = [];
  const shapes: ShapeResult[] = [];
  const open = new Set<Target>();
  try {
    const models = join(dir, "models");
    mkdirSync(models);
    const template = readFileSync(join(ROOT, "test/fixtures/templates/chatml-tools.jinja"), "utf8");
    const agentPath = await writeTinyModel(models, {
      name: "agent",
      kind: "chat",
      contextLength: CTX,
      chatTemplate: template,
    });
    const otherPath = await writeTinyModel(models, { name: "other", kind: "chat", seed: 7 });
    const cfg = join(dir, "gglib.yaml");
    writeFileSync(
      cfg,
      [
        "models:",
        `  agent: {path: ${JSON.stringify(agentPath)}, ctx: ${CTX}, parallel: 1}`,
        `  other: {path: ${JSON.stringify(otherPath)}}`,
      ].join("\n") + "\n",
    );

    const gglib = async (): Promise<Target & { proxy: RunningProxy }> => {
      rmSync(join(dir, "kv"), { recursive: true, force: true });
      const proxy = await startCachedProxy({
        bin,
        dir,
        configPath: cfg,
        basePort: 19500,
        maxModels: 1,
        contextCacheDir: join(dir, "kv"),
      });
      return {
        name: "gglib",
        url: proxy.url,
        proxy,
        swapAway: () => oneToken(proxy.url, "other"),
        stop: () => proxy.close(10_000),
      };
    };
    const direct = async (flags: string[]): Promise<Target> => {
      const port = await freePort();
      const child = spawnTracked(bin, ["-m", agentPath, ...flags, "--host", "127.0.0.1", "--port", String(port)]);
      const url = `http://127.0.0.1:${port}`;
      await waitHttp(`${url}/health`, 120_000, 20, () => child.exitCode !== null);
      return { name: "direct", url, stop: () => stopTracked(child, 5_000) };
    };
    const router = async (flags: string[]): Promise<Target> => {
      const port = await freePort();
      const child = spawnTracked(bin, [
        "--models-dir",
        models,
        "--models-max",
        "1",
        ...flags,
        "--host",
        "127.0.0.1",
        "--port",
        String(port),
      ]);
      const url = `http://127.0.0.1:${port}`;
      await waitHttp(`${url}/health`, 60_000, 20, () => child.exitCode !== null);
      return { name: "router", url, swapAway: () => oneToken(url, "other"), stop: () => stopTracked(child, 5_000) };
    };

    for (const agent of agents) {
      const shape = AGENT_SHAPE[agent];
      log(`[agent-session] recording ${AGENTS[agent].title}'s first ${SHAPE_PATH[shape]} request…`);
      let recorded: Json;
      try {
        recorded = await recordFirstRequest(agent, dir);
      } catch (e) {
        log(`[agent-session] ${agent}: NOT MEASURED: ${(e as Error).message}`);
        rows.push(
          row({
            section: SECTION,
            metric: `${AGENTS[agent].title} (${SHAPE_PATH[shape]}) session`,
            value: NaN,
            baseline: NaN,
            baselineName: "direct llama-server",
            unit: "ms",
            reps: 0,
            note: `NOT MEASURED: its first request could not be recorded: ${(e as Error).message}`,
          }),
        );
        continue;
      }
      const first = replayable(shape, recorded, "agent", MAX_TOKENS);
      const bodies = sessionBodies(shape, first, turns + swaps);
      const g = await gglib();
      open.add(g);
      await oneToken(g.url, "agent"); // loaded before turn 1
      const st = (await (await fetch(`${g.url}/api/status`)).json()) as { models: { name: string; pid?: number }[] };
      const pid = st.models.find((m) => m.name === "agent")?.pid;
      if (pid === undefined) throw new Error("gglib's agent model has no pid in /api/status");
      const flags = sharedFlags(pid);
      log(`[agent-session] llama-server flags (all three): ${flags.join(" ")}`);
      const targets: Target[] = [g];
      for (const make of [direct, router]) {
        const t = await make(flags);
        open.add(t);
        targets.push(t);
        await oneToken(t.url, "agent"); // loaded (and one request served) before turn 1, as on gglib
      }
      log(`[agent-session] ${agent}: ${turns} turns, then ${swaps} after a swap (gglib, router), on all three…`);
      let results: ShapeResult["results"];
      try {
        results = await runSession(targets, shape, bodies, turns);
      } finally {
        for (const t of targets) {
          open.delete(t);
          await t.stop();
        }
      }
      const s: ShapeResult = {
        agent,
        shape,
        firstPromptTokens: results.gglib[0]?.promptTokens ?? null,
        flags,
        results,
      };
      shapes.push(s);
      opts.onShape?.(s);
      rows.push(...shapeRows(s, turns));
    }
    return { rows, shapes };
  } finally {
    for (const t of open) await t.stop().catch(() => {});
    killLeftovers(dir);
    rmSync(dir, { recursive: true, force: true });
  }
}

const later = (xs: TurnResult[]) => xs.filter((x) => x.turn > 1 && !x.afterSwap);
const swapped = (xs: TurnResult[]) => xs.filter((x) => x.afterSwap);
const ms = (xs: TurnResult[]) => xs.map((x) => x.firstTokenMs);
const sum = (xs: TurnResult[]) => (ms(xs).reduce((a, b) => a + b, 0) / 1000).toFixed(1);
const reusedShare = (xs: TurnResult[]) =>
  median(xs.map((x) => (x.cachedTokens ?? 0) / Math.max(1, x.promptTokens ?? 1)) ?? NaN);

function shapeRows(s: ShapeResult, turns: number): Row[] {
  const { gglib, direct, router } = s.results;
  const name = `${AGENTS[s.agent].title} (${SHAPE_PATH[s.shape]}, ${s.firstPromptTokens ?? "?"} prompt tokens at turn 1)`;
  const reuse = (xs: TurnResult[]) => `${(reusedShare(xs) * 100).toFixed(1)} %`;
  return [
    row({
      section: SECTION,
      metric: `${name}: first-token time, turns 2–${turns}, gglib vs direct llama-server`,
      value: median(ms(later(gglib))),
      baseline: median(ms(later(direct))),
      baselineName: "direct llama-server",
      unit: "ms",
      spread: spread(ms(later(gglib))),
      baselineSpread: spread(ms(later(direct))),
      reps: later(gglib).length,
      note: `prompt reused per turn (median): gglib ${reuse(later(gglib))}, direct ${reuse(later(direct))}; sum over turns 2–${turns}: gglib ${sum(later(gglib))} s, direct ${sum(later(direct))} s, router ${sum(later(router))} s; turn 1: gglib ${gglib[0]?.firstTokenMs.toFixed(0)} ms, direct ${direct[0]?.firstTokenMs.toFixed(0)} ms`,
    }),
    row({
      section: SECTION,
      metric: `${name}: first-token time, turns 2–${turns}, gglib vs llama.cpp router`,
      value: median(ms(later(gglib))),
      baseline: median(ms(later(router))),
      baselineName: "llama.cpp router",
      unit: "ms",
      spread: spread(ms(later(gglib))),
      baselineSpread: spread(ms(later(router))),
      reps: later(gglib).length,
      note: `prompt reused per turn (median): router ${reuse(later(router))}`,
    }),
    row({
      section: SECTION,
      metric: `${name}: first-token time of a turn after a swap away and back, gglib (restored) vs llama.cpp router`,
      value: median(ms(swapped(gglib))),
      baseline: median(ms(swapped(router))),
      baselineName: "llama.cpp router (re-prefill)",
      unit: "ms",
      spread: spread(ms(swapped(gglib))),
      baselineSpread: spread(ms(swapped(router))),
      reps: swapped(gglib).length,
      note: `prompt reused after the swap: gglib ${swapped(gglib)
        .map((x) => `${x.cachedTokens}/${x.promptTokens}`)
        .join(", ")}; router ${swapped(router)
        .map((x) => `${x.cachedTokens}/${x.promptTokens}`)
        .join(", ")} (tokens cached / prompt)`,
    }),
  ];
}

/** The per-turn table of one shape: first-token ms and cached / prompt tokens on each server. */
export function turnTable(s: ShapeResult): string {
  const by = (xs: TurnResult[], turn: number) => xs.find((x) => x.turn === turn);
  const cell = (x: TurnResult | undefined) =>
    x ? `${x.firstTokenMs.toFixed(0)} ms, ${x.cachedTokens ?? "?"} / ${x.promptTokens ?? "?"}` : "–";
  const n = Math.max(...Object.values(s.results).map((xs) => xs.length));
  return [
    `### ${AGENTS[s.agent].title}, ${SHAPE_PATH[s.shape]}: first token, cached / prompt tokens`,
    "",
    "| turn | gglib | direct llama-server | llama.cpp router |",
    "|---|---|---|---|",
    ...Array.from({ length: n }, (_, i) => {
      const t = i + 1;
      const swap = s.results.gglib.find((x) => x.turn === t)?.afterSwap ?? false;
      return `| ${t}${swap ? " (after a swap)" : ""}${t % 2 === 0 && !swap ? " (tool result)" : ""} | ${cell(by(s.results.gglib, t))} | ${cell(by(s.results.direct, t))} | ${cell(by(s.results.router, t))} |`;
    }),
    "",
  ].join("\n");
}

/** N sessions of one shape side by side on gglib (4 slots): the new (not reused) tokens of each request per turn. */
export async function benchSessions(agent: AgentName, n: number, turns = 3): Promise<string> {
  const bin = realLlamaServer();
  if (!bin) throw new Error("no real llama-server (npm run rig:llama-server, or GGLIB_BENCH_LLAMA_SERVER)");
  const dir = mkdtempSync(join(tmpdir(), "gglib-bench-agent-sessions-"));
  let proxy: RunningProxy | undefined;
  try {
    const shape = AGENT_SHAPE[agent];
    const template = readFileSync(join(ROOT, "test/fixtures/templates/chatml-tools.jinja"), "utf8");
    mkdirSync(join(dir, "models"));
    const path = await writeTinyModel(join(dir, "models"), {
      name: "agent",
      kind: "chat",
      contextLength: CTX * 4,
      chatTemplate: template,
    });
    const cfg = join(dir, "gglib.yaml");
    writeFileSync(cfg, `models:\n  agent: {path: ${JSON.stringify(path)}, ctx: ${CTX * 4}}\n`);
    const runner = new LlamaServerRunner({ binaryPath: bin, pidsDir: join(dir, "pids") });
    proxy = await startProxy({ configPath: cfg, port: 0, runner, watchConfig: false, contextCache: 0 });
    log(`[agent-session] recording ${AGENTS[agent].title}'s first request…`);
    const rec = replayable(shape, await recordFirstRequest(agent, dir), "agent", MAX_TOKENS);
    // each session its own question (as sessions in different folders differ in their environment and question)
    const sessions = Array.from({ length: n }, (_, i) =>
      sessionBodies(
        shape,
        JSON.parse(JSON.stringify(rec).replace("turn 1: list the files", `session ${i + 1}: list the files`)) as Json,
        turns,
      ),
    );
    const lines = [
      `### ${n} ${AGENTS[agent].title} sessions side by side (${SHAPE_PATH[shape]}, 4 slots): new tokens evaluated per request`,
      "",
      "| turn | tokens evaluated (prompt − cached), per session (of them, the previous prompt again) | first-token ms (median) |",
      "|---|---|---|",
    ];
    let prev: StreamedTurn[] = [];
    for (let t = 0; t < turns; t++) {
      log(`[agent-session] ${n} sessions, turn ${t + 1}…`);
      const rs = await Promise.all(sessions.map((s) => streamTurn(proxy!.url, shape, s[t]!)));
      const bad = rs.find((r) => r.status !== 200);
      if (bad) throw new Error(`HTTP ${bad.status}: ${bad.text}`);
      // evaluated = prompt − cached; in brackets, how much of the session's previous prompt was evaluated again
      const cell = (r: StreamedTurn, i: number) =>
        `${(r.promptTokens ?? 0) - (r.cachedTokens ?? 0)}${t === 0 ? "" : ` (${(prev[i]?.promptTokens ?? 0) - (r.cachedTokens ?? 0)})`}`;
      lines.push(`| ${t + 1} | ${rs.map(cell).join(", ")} | ${median(rs.map((r) => r.firstTokenMs)).toFixed(0)} |`);
      prev = rs;
    }
    return lines.join("\n") + "\n";
  } finally {
    await proxy?.close(5_000);
    killLeftovers(dir);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Writes bench/results/agent-session-latest.{md,json}. */
export function writeAgentSessionResults(rows: Row[], shapes: ShapeResult[], command: string, extra = ""): string {
  const m = machine();
  const md = [
    `# Agent session: gglib vs direct llama-server vs llama.cpp router (${new Date().toISOString()})`,
    "",
    `Command: \`${command}\`. Machine: ${m.cpus} × ${m.cpuModel}, ${m.memGiB} GiB RAM, Node ${m.node}.`,
    "",
    ...shapes.map((s) => turnTable(s)),
    extra,
  ].join("\n");
  const out = join(ROOT, "bench", "results");
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, "agent-session-latest.md"), md);
  writeFileSync(
    join(out, "agent-session-latest.json"),
    JSON.stringify({ at: new Date().toISOString(), command, machine: m, rows, shapes }, null, 2) + "\n",
  );
  return md;
}

runStandalone(import.meta.url, "agent session: gglib vs direct llama-server vs llama.cpp router", async () => {
  const agents = arg("--agents")?.split(",") as AgentName[] | undefined;
  const sessions = Number(arg("--sessions")) || 0;
  if (sessions > 0) {
    const md = await benchSessions(agents?.[0] ?? "codex", sessions, Number(arg("--turns")) || 3);
    process.stdout.write(md + "\n");
    return [];
  }
  const { rows, shapes } = await benchAgentSession({
    ...(agents ? { agents } : {}),
    ...(arg("--turns") ? { turns: Number(arg("--turns")) } : {}),
    ...(arg("--swaps") ? { swaps: Number(arg("--swaps")) } : {}),
    onShape: (s) => process.stderr.write(turnTable(s) + "\n"),
  });
  const md = writeAgentSessionResults(
    rows,
    shapes,
    `npx tsx ${[relative(ROOT, process.argv[1]!), ...process.argv.slice(2)].join(" ")}`,
  );
  process.stdout.write(md + "\n");
  return rows;
});
