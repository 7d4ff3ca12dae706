/** gglib launch's pure parts: each agent's settings, the model it gets, the context it runs with. */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  AGENTS,
  agentLaunch,
  childEnv,
  isAgentName,
  NO_KEY,
  opencodeConfig,
  printEnvLines,
  shellQuote,
} from "../../../src/agents/agents.js";
import { largestFitting, planContext } from "../../../src/agents/context.js";
import { pickModel } from "../../../src/agents/model.js";

const wiring = { proxyUrl: "http://127.0.0.1:8080/", model: "qwen:latest", ctx: 32768, args: ["-p", "hi"] };

describe("each agent's settings", () => {
  test("claude: the proxy as Anthropic's base URL, every model slot, the context window, no vendor traffic", () => {
    const l = agentLaunch("claude", { ...wiring, apiKey: "sk-1" });
    assert.equal(l.command, "claude");
    assert.deepEqual(l.args, ["-p", "hi"]);
    assert.equal(l.env.ANTHROPIC_BASE_URL, "http://127.0.0.1:8080");
    assert.equal(l.env.ANTHROPIC_AUTH_TOKEN, "sk-1");
    for (const k of [
      "ANTHROPIC_MODEL",
      "ANTHROPIC_DEFAULT_OPUS_MODEL",
      "ANTHROPIC_DEFAULT_SONNET_MODEL",
      "ANTHROPIC_DEFAULT_HAIKU_MODEL",
      "ANTHROPIC_SMALL_FAST_MODEL",
      "CLAUDE_CODE_SUBAGENT_MODEL",
    ])
      assert.equal(l.env[k], "qwen:latest", k);
    // Claude Code 2.1.328 takes CLAUDE_CODE_MAX_CONTEXT_TOKENS as an unknown model's window (and compacts within
    // it); CLAUDE_CODE_AUTO_COMPACT_WINDOW under 100k would be read as 100k, past the model's context
    assert.equal(l.env.CLAUDE_CODE_MAX_CONTEXT_TOKENS, "32768");
    assert.equal(l.env.CLAUDE_CODE_AUTO_COMPACT_WINDOW, undefined);
    assert.equal(agentLaunch("claude", { ...wiring, ctx: 65536 }).env.CLAUDE_CODE_MAX_CONTEXT_TOKENS, "65536");
    assert.equal(l.env.CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC, "1");
    assert.equal(l.env.DISABLE_TELEMETRY, "1");
    assert.equal(l.env.CLAUDE_CODE_ATTRIBUTION_HEADER, "0");
    assert.deepEqual(l.unset, ["ANTHROPIC_API_KEY"], "a real Anthropic key never goes to the proxy");
    assert.equal(agentLaunch("claude", wiring).env.ANTHROPIC_AUTH_TOKEN, NO_KEY, "a placeholder without a key");
  });

  test("codex: a provider by -c overrides on the Responses API, the context window, the key by env only", () => {
    const l = agentLaunch("codex", { ...wiring, apiKey: "sk-2", args: ["exec", "hi"] });
    assert.equal(l.command, "codex");
    const overrides = l.args.filter((_, i) => l.args[i - 1] === "-c");
    assert.ok(overrides.includes('model_provider="gglib"'));
    assert.ok(
      overrides.includes(
        'model_providers.gglib={name="gglib",base_url="http://127.0.0.1:8080/v1",wire_api="responses",env_key="GGLIB_API_KEY"}',
      ),
      overrides.join("\n"),
    );
    assert.ok(overrides.includes('model="qwen:latest"'));
    assert.ok(overrides.includes("model_context_window=32768"));
    assert.ok(overrides.includes("model_auto_compact_token_limit=29491"));
    assert.deepEqual(l.args.slice(-2), ["exec", "hi"], "the agent's own arguments come last");
    assert.ok(!l.args.join(" ").includes("sk-2"), "the key is not on the command line");
    assert.deepEqual(l.env, { GGLIB_API_KEY: "sk-2" });
    const noKey = agentLaunch("codex", wiring);
    assert.ok(!noKey.args.join(" ").includes("env_key"));
  });

  test("opencode: a custom OpenAI-compatible provider in OPENCODE_CONFIG_CONTENT, with the model's limits", () => {
    const l = agentLaunch("opencode", wiring);
    const cfg = JSON.parse(l.env.OPENCODE_CONFIG_CONTENT!) as ReturnType<typeof opencodeConfig>;
    assert.deepEqual(cfg, opencodeConfig("http://127.0.0.1:8080", wiring));
    assert.equal(cfg.model, "gglib/qwen:latest");
    const p = (cfg.provider as Record<string, { options: { baseURL: string }; models: Record<string, unknown> }>)
      .gglib!;
    assert.equal(p.options.baseURL, "http://127.0.0.1:8080/v1");
    assert.deepEqual(p.models["qwen:latest"], {
      name: "qwen:latest",
      tool_call: true,
      limit: { context: 32768, output: 8192 },
    });
    assert.equal(l.env.OPENCODE_DISABLE_AUTOUPDATE, "1");
    assert.equal(l.env.OPENCODE_DISABLE_MODELS_FETCH, "1");
  });

  test("the child's environment: inherited, less what is unset, plus the agent's; print-env quotes for sh", () => {
    const l = agentLaunch("claude", wiring);
    const env = childEnv({ PATH: "/bin", ANTHROPIC_API_KEY: "real", ANTHROPIC_MODEL: "old" }, l);
    assert.equal(env.PATH, "/bin");
    assert.equal(env.ANTHROPIC_API_KEY, undefined);
    assert.equal(env.ANTHROPIC_MODEL, "qwen:latest");
    assert.equal(shellQuote("a b'c"), "'a b'\\''c'");
    assert.equal(shellQuote("http://x:1/v1"), "http://x:1/v1");
    const lines = printEnvLines(l);
    assert.equal(lines[0], "unset ANTHROPIC_API_KEY");
    assert.ok(lines.includes("export ANTHROPIC_BASE_URL=http://127.0.0.1:8080"));
    assert.equal(lines.at(-1), "claude -p hi");
    assert.ok(isAgentName("codex") && !isAgentName("cursor"));
    for (const a of Object.values(AGENTS)) assert.ok(a.floorTokens >= 32768, a.name);
  });
});

describe("the context the model runs with", () => {
  test("the configured context is kept when it holds the floor", () => {
    assert.deepEqual(planContext({ floor: 32768, configured: 65536, trained: 131072 }), {
      ok: true,
      ctx: 65536,
      load: false,
      cap: 131072,
    });
  });

  test("a smaller one is raised to the floor (or --ctx), within the trained context and the budget", () => {
    assert.deepEqual(planContext({ floor: 32768, configured: 4096, trained: 131072, fits: 50000 }), {
      ok: true,
      ctx: 32768,
      load: true,
      cap: 50000,
    });
    assert.deepEqual(planContext({ floor: 32768, requested: 40000, configured: 65536, trained: 131072 }), {
      ok: true,
      ctx: 40000,
      load: true,
      cap: 131072,
    });
    assert.equal(planContext({ floor: 32768, requested: 65536, configured: 65536 }).ok, true);
  });

  test("refused with the numbers: below the floor, more than trained, more than fits", () => {
    const below = planContext({ floor: 32768, requested: 8192 });
    assert.ok(!below.ok && below.reason === "below_floor" && /8192 is below the 32768/.test(below.message));
    const trained = planContext({ floor: 32768, configured: 2048, trained: 2048 });
    assert.ok(!trained.ok && trained.reason === "too_small");
    assert.match(trained.ok ? "" : trained.message, /cannot hold 32768 tokens \(trained on 2048 tokens\)/);
    const fits = planContext({ floor: 32768, trained: 131072, fits: 20000 });
    assert.match(fits.ok ? "" : fits.message, /memory budget holds at most 20000 tokens/);
  });

  test("largestFitting bisects to the largest multiple of 256 that fits", () => {
    const bytesAt = (ctx: number) => 1000 + ctx * 10;
    assert.equal(largestFitting(bytesAt, 1000 + 40000 * 10, 256, 131072), 39936);
    assert.equal(largestFitting(bytesAt, 1e12, 256, 131072), 131072);
    assert.equal(largestFitting(bytesAt, 100, 256, 131072), undefined);
  });
});

describe("the model an agent gets", () => {
  const models = [
    { name: "short", aliases: [], trained: 4096, loaded: true },
    { name: "long", aliases: ["coder"], trained: 131072 },
    { name: "long2", aliases: [], trained: 65536, loaded: true },
  ];
  test("a loaded model that holds the floor first, then the first that does; --model by the name rule", () => {
    assert.deepEqual(pickModel(models, 32768), { ok: true, name: "long2" });
    assert.deepEqual(pickModel(models.slice(0, 2), 32768), { ok: true, name: "long" });
    assert.deepEqual(pickModel(models, 32768, "coder:latest"), { ok: true, name: "long" });
    assert.deepEqual(pickModel(models, 32768, "short"), { ok: true, name: "short" }, "named: checked later");
  });
  test("a model whose template takes tools comes before one that does not", () => {
    const withTools = [
      { name: "plain", aliases: [], trained: 131072, loaded: true, tools: false },
      { name: "tooled", aliases: [], trained: 65536, tools: true },
    ];
    assert.deepEqual(pickModel(withTools, 32768), { ok: true, name: "tooled" });
    assert.deepEqual(pickModel(withTools.slice(0, 1), 32768), { ok: true, name: "plain" }, "still one that holds it");
  });

  test("none that holds it, or no model: the reason, with the numbers", () => {
    const r = pickModel(models.slice(0, 1), 32768);
    assert.ok(!r.ok && /no model can hold the 32768 tokens .*short \(4096 tokens\)/.test(r.message));
    const none = pickModel([], 32768);
    assert.ok(!none.ok && /no models/.test(none.message));
    const missing = pickModel(models, 32768, "nope");
    assert.ok(!missing.ok && /available: short, long, long2/.test(missing.message));
  });
});
