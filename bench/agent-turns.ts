/**
 * Prompt reuse per turn for each coding agent (issue 23): a session of N turns (default 5) of each real agent CLI
 * (Claude Code `-p` then `-p --continue`, Codex `exec` then `exec resume --last`, opencode `run` then
 * `run --continue`) through `gglib launch` against one `gglib proxy` on the real llama-server and a tiny
 * random-weight model (65,536 tokens of context, a tool-capable template). Every request the proxy served is listed
 * with its prompt and cached tokens (from /api/activity): how much of each turn llama-server took from its cache.
 * The tiny model's vocabulary is nearly one character per token, so the prompts are ~2.5× longer in tokens than on
 * a real model; the answers are gibberish and always stop at the token limit (Claude Code reports that as an error
 * and retries: its exit code is 1).
 *
 * `--sessions N` runs N sessions of each agent side by side (each in its own folder and home, so each continues its
 * own), turn by turn, on a 131,072-token model with llama-server's default 4 slots sharing one KV cache: whether
 * each session keeps its own slot (its prefix reused) with N ≤ 4 sessions, and what happens with more.
 *
 * `--swap` puts a second model in the config, runs the proxy with `--max-models 1` and the context cache on, and
 * asks that other model something between two turns: each turn after the first then finds the agent's model
 * swapped out and back, its conversation restored from the saved KV cache (or not: the cached tokens say).
 *
 *   npx tsx bench/agent-turns.ts [--turns 5] [--sessions 1] [--agents claude,codex,opencode] [--swap] [--json]
 *   (run alone; not part of all.ts)
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { LlamaServerRunner } from "../src/runner/llama-server-runner.js";
import { startProxy } from "../src/proxy/index.js";
import { writeTinyModel } from "../test/support/tiny-models.js";
import { ROOT, killLeftovers, log } from "./lib.js";
import { realLlamaServer } from "./swap.js";

const TURNS = Number(process.argv[process.argv.indexOf("--turns") + 1]) || 5;
const JSON_OUT = process.argv.includes("--json");
const arg = (name: string): string | undefined =>
  process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : undefined;
const SESSION_COUNT = Number(arg("--sessions")) || 1;
const AGENTS_RUN = (arg("--agents") ?? "claude,codex,opencode").split(",");
const SWAP = process.argv.includes("--swap");

const SESSIONS: Record<string, (turn: number) => string[]> = {
  claude: (n) => (n === 1 ? ["-p", `turn ${n}: list the files`] : ["-p", "--continue", `turn ${n}: and now?`]),
  codex: (n) =>
    n === 1
      ? ["exec", "--skip-git-repo-check", `turn ${n}: list the files`]
      : ["exec", "--skip-git-repo-check", "resume", "--last", `turn ${n}: and now?`],
  opencode: (n) => (n === 1 ? ["run", `turn ${n}: list the files`] : ["run", "--continue", `turn ${n}: and now?`]),
};

interface Record_ {
  seq: number;
  model: string | null;
  path: string;
  status: number;
  promptTokens: number | null;
  cachedTokens: number | null;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "gglib-bench-agents-"));
  mkdirSync(join(dir, "models"), { recursive: true });
  for (let i = 0; i < SESSION_COUNT; i++) {
    mkdirSync(join(dir, `home-${i}`, ".codex"), { recursive: true });
    mkdirSync(join(dir, `work-${i}`), { recursive: true });
    spawnSync("git", ["init", "-q"], { cwd: join(dir, `work-${i}`) });
  }
  const template = readFileSync(join(ROOT, "test/fixtures/templates/chatml-tools.jinja"), "utf8");
  const model = await writeTinyModel(join(dir, "models"), {
    name: "agent",
    kind: "chat",
    contextLength: SESSION_COUNT > 1 ? 131072 : 65536,
    chatTemplate: template,
  });
  const config = join(dir, "gglib.yaml");
  const other = SWAP ? await writeTinyModel(join(dir, "models"), { name: "other", kind: "chat", seed: 7 }) : undefined;
  writeFileSync(
    config,
    `models:\n  agent:\n    path: ${JSON.stringify(model)}\n    extraArgs: ["-n", "32"]\n` +
      (other ? `  other:\n    path: ${JSON.stringify(other)}\n` : ""),
  );
  const llama = realLlamaServer();
  if (!llama) throw new Error("no real llama-server: run `npm run rig:llama-server` or set GGLIB_BENCH_LLAMA_SERVER");
  const runner = new LlamaServerRunner({ binaryPath: llama, pidsDir: join(dir, "pids") });
  const proxy = await startProxy({
    configPath: config,
    port: 0,
    runner,
    watchConfig: false,
    ...(SWAP ? { maxModels: 1, contextCacheDir: join(dir, "kv") } : { contextCache: 0 }),
  });
  /** The other model answers one short request: the agent's model is stopped (its slots saved) to make room. */
  const swapAway = async (): Promise<void> => {
    const r = await fetch(`${proxy.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "other", messages: [{ role: "user", content: "hi" }], max_tokens: 4 }),
    });
    await r.text();
  };
  const envOf = (i: number): NodeJS.ProcessEnv => {
    const home = join(dir, `home-${i}`);
    return {
      ...process.env,
      PATH: `${join(ROOT, "node_modules/.bin")}${delimiter}${process.env.PATH ?? ""}`,
      HOME: home,
      XDG_CONFIG_HOME: join(home, ".config"),
      XDG_DATA_HOME: join(home, ".local/share"),
      XDG_CACHE_HOME: join(home, ".cache"),
      XDG_STATE_HOME: join(home, ".local/state"),
      CODEX_HOME: join(home, ".codex"),
      GGLIB_DATA_DIR: join(dir, "data"),
      NO_COLOR: "1",
    };
  };
  const turns: { agent: string; turn: number; exit: number | null; ms: number; from: number; to: number }[] = [];
  let seq = 0;
  try {
    for (const [agent, args] of Object.entries(SESSIONS).filter(([a]) => AGENTS_RUN.includes(a))) {
      for (let n = 1; n <= TURNS; n++) {
        if (SWAP && n > 1) await swapAway();
        const t0 = Date.now();
        // async: the proxy runs in this process and must keep serving while the agents run
        const one = (i: number) =>
          new Promise<number | null>((resolve) => {
            const child = spawn(
              process.execPath,
              [
                join(ROOT, "bin/gglib.js"),
                "launch",
                agent,
                "--url",
                proxy.url,
                "--max-output",
                "24",
                "-q",
                "--",
                ...args(n),
              ],
              { cwd: join(dir, `work-${i}`), env: envOf(i), stdio: ["ignore", "ignore", "ignore"] },
            );
            const kill = setTimeout(() => child.kill("SIGKILL"), 300_000);
            child.on("close", (c) => {
              clearTimeout(kill);
              resolve(c);
            });
          });
        const codes = await Promise.all(Array.from({ length: SESSION_COUNT }, (_, i) => one(i)));
        const code = codes.find((c) => c !== 0) ?? codes[0] ?? null;
        const all = ((await (await fetch(`${proxy.url}/api/activity`)).json()) as { records: Record_[] }).records;
        const last = Math.max(seq, ...all.map((x) => x.seq));
        turns.push({ agent, turn: n, exit: code, ms: Date.now() - t0, from: seq, to: last });
        seq = last;
        log(`${agent} turn ${n}: exit ${code}, ${Date.now() - t0} ms`);
      }
    }
    const records = ((await (await fetch(`${proxy.url}/api/activity`)).json()) as { records: Record_[] }).records;
    if (SWAP) {
      const st = (await (await fetch(`${proxy.url}/api/status`)).json()) as {
        models: { name: string; context?: unknown }[];
      };
      log(`context cache of agent: ${JSON.stringify(st.models.find((m) => m.name === "agent")?.context)}`);
    }
    const out = turns.map((t) => ({
      ...t,
      requests: records
        .filter((x) => x.seq > t.from && x.seq <= t.to && x.model !== "other")
        .map((x) => ({ path: x.path, status: x.status, prompt: x.promptTokens, cached: x.cachedTokens })),
    }));
    if (JSON_OUT) {
      process.stdout.write(JSON.stringify(out, null, 2) + "\n");
      return;
    }
    const lines = [
      "| agent | turn | exit | ms | requests: prompt tokens / cached (new) |",
      "|---|---|---|---|---|",
      ...out.map(
        (t) =>
          `| ${t.agent} | ${t.turn} | ${t.exit} | ${t.ms} | ${t.requests
            .map((q) =>
              q.prompt === null
                ? `${q.path} (no usage)`
                : `${q.prompt} / ${q.cached ?? "?"} (${q.prompt - (q.cached ?? 0)})`,
            )
            .join("; ")} |`,
      ),
    ];
    process.stdout.write(lines.join("\n") + "\n");
  } finally {
    await proxy.close(5_000);
    killLeftovers(dir);
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
