// Agent-shaped sessions through the proxy on the real llama-server (issue 23): the history of every turn holds an
// assistant tool call and the tool's result in each API's own shape (/v1/messages tool_use + tool_result,
// /v1/responses function_call + function_call_output, /v1/chat/completions tool_calls + role "tool"), since the
// random weights never call a tool themselves. Each turn must reuse the whole previous prompt (llama-server's
// `timings.cache_n`, or `cache_read_input_tokens` on /v1/messages), and /api/activity must say the same. Also:
// sessions side by side on a model with 2 slots each keep their own slot; with more sessions than slots every
// request is still answered, and what each one evaluated again is printed.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { LlamaServerRunner } from "../../src/runner/llama-server-runner.js";
import { startProxy, type RunningProxy } from "../../src/proxy/index.js";
import { ensureLlamaServer } from "../support/llama-server.js";
import { writeTinyModel } from "../support/tiny-models.js";
import { killQuietly, pidsWithArg } from "../support/procs.js";
import {
  replayable,
  sessionBodies,
  streamTurn,
  syntheticFirst,
  type AgentShape,
  type StreamedTurn,
} from "../support/agent-session.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const TOOLS_TEMPLATE = readFileSync(join(ROOT, "test/fixtures/templates/chatml-tools.jinja"), "utf8");
const SHAPES: AgentShape[] = ["anthropic-messages", "openai-responses", "openai-chat"];

let dir: string;
let proxy: RunningProxy;

interface Activity {
  seq: number;
  path: string;
  model: string | null;
  promptTokens: number | null;
  cachedTokens: number | null;
}
const activity = async (): Promise<Activity[]> =>
  ((await (await fetch(`${proxy.url}/api/activity`)).json()) as { records: Activity[] }).records;

before(async () => {
  const llama = await ensureLlamaServer();
  dir = mkdtempSync(join(tmpdir(), "gglib-e2e-agent-sessions-"));
  const one = await writeTinyModel(dir, {
    name: "one",
    kind: "chat",
    contextLength: 32768,
    chatTemplate: TOOLS_TEMPLATE,
  });
  const two = await writeTinyModel(dir, {
    name: "two",
    kind: "chat",
    contextLength: 32768,
    chatTemplate: TOOLS_TEMPLATE,
  });
  const configPath = join(dir, "gglib.yaml");
  writeFileSync(
    configPath,
    [
      "models:",
      `  one: {path: ${JSON.stringify(one)}, ctx: 16384, parallel: 1}`,
      `  two: {path: ${JSON.stringify(two)}, ctx: 32768, parallel: 2}`,
    ].join("\n") + "\n",
  );
  const runner = new LlamaServerRunner({
    binaryPath: llama,
    pidsDir: join(dir, "pids"),
    basePort: 21400 + Math.floor(Math.random() * 300),
  });
  proxy = await startProxy({ configPath, port: 0, memoryBudget: "8GiB", runner, watchConfig: false, contextCache: 0 });
});

after(async () => {
  await proxy?.close(5_000);
  for (const p of pidsWithArg(dir)) killQuietly(p);
  rmSync(dir, { recursive: true, force: true });
});

const newTokens = (t: StreamedTurn) => (t.promptTokens ?? 0) - (t.cachedTokens ?? 0);

describe(
  "agent-shaped sessions with tool calls and results reuse their prefix (real llama-server)",
  { timeout: 15 * 60_000 },
  () => {
    for (const shape of SHAPES) {
      test(`${shape}: every turn after the first reuses the whole previous prompt, tool results included`, async () => {
        const bodies = sessionBodies(shape, replayable(shape, syntheticFirst(shape, "one"), "one", 4), 5);
        const seqBefore = Math.max(0, ...(await activity()).map((a) => a.seq));
        const turns: StreamedTurn[] = [];
        for (const b of bodies) {
          const t = await streamTurn(proxy.url, shape, b);
          assert.equal(t.status, 200, t.text);
          turns.push(t);
        }
        const table = turns.map((t, i) => `turn ${i + 1}: ${t.cachedTokens}/${t.promptTokens}`).join(", ");
        console.log(`${shape}: cached/prompt ${table}`);
        assert.ok((turns[0]!.promptTokens ?? 0) > 1500, table);
        for (let i = 1; i < turns.length; i++) {
          const prev = turns[i - 1]!.promptTokens!;
          const t = turns[i]!;
          assert.ok(t.promptTokens! > prev, `turn ${i + 1} grows: ${table}`);
          // the previous prompt is reused up to its last token or two (llama-server evaluates at least one token
          // again; the end-of-turn marker after the generated answer is re-tokenised)
          assert.ok(t.cachedTokens! >= prev - 2, `turn ${i + 1} reuses turn ${i}'s prompt: ${table}`);
        }
        // the proxy's own record of each turn says the same
        const seen = (await activity()).filter((a) => a.seq > seqBefore && a.model === "one");
        assert.deepEqual(
          seen.map((a) => [a.promptTokens, a.cachedTokens]),
          turns.map((t) => [t.promptTokens, t.cachedTokens]),
        );
      });
    }

    test("two sessions side by side on 2 slots keep their own; three on 2 slots are all answered", async () => {
      const shape: AgentShape = "openai-responses";
      const session = (i: number) => {
        const first = syntheticFirst(shape, "two", 3000);
        const input = (first.input as { content: { text: string }[] }[])[0]!;
        input.content[0]!.text = `session ${i}: ${input.content[0]!.text}`;
        return sessionBodies(shape, replayable(shape, first, "two", 4), 3);
      };
      const run = async (n: number, offset: number): Promise<StreamedTurn[][]> => {
        const sessions = Array.from({ length: n }, (_, i) => session(offset + i));
        const rows: StreamedTurn[][] = [];
        for (let t = 0; t < 3; t++) {
          const rs: StreamedTurn[] = await Promise.all(sessions.map((s) => streamTurn(proxy.url, shape, s[t]!)));
          for (const r of rs) assert.equal(r.status, 200, r.text);
          rows.push(rs);
        }
        // per request: tokens evaluated (prompt − cached), and of them the previous turn's prompt evaluated again
        console.log(
          `${n} sessions on 2 slots, evaluated (previous turn's prompt again) per request: ` +
            rows
              .map(
                (rs, t) =>
                  `turn ${t + 1}: ${rs.map((r, s) => `${newTokens(r)} (${t === 0 ? "–" : rows[t - 1]![s]!.promptTokens! - r.cachedTokens!})`).join(", ")}`,
              )
              .join("; "),
        );
        return rows;
      };
      const two = await run(2, 0);
      for (let t = 1; t < 3; t++)
        for (let s = 0; s < 2; s++) {
          const prev = two[t - 1]![s]!.promptTokens!;
          assert.ok(two[t]![s]!.cachedTokens! >= prev - 2, `session ${s + 1} turn ${t + 1} kept its slot`);
        }
      const three = await run(3, 10);
      assert.equal(three.flat().length, 9);
    });
  },
);
