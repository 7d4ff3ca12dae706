/**
 * Coding agents wired to a gglib proxy (pure): for each agent, what `gglib launch` sets so that it talks to the
 * proxy and nothing else: its base URL, a key, the model, the context window it may fill, and the switches that
 * turn off its traffic to the vendor (telemetry, error reports, update checks). Nothing here touches the user's own
 * config files: every setting travels in the child's environment or on its command line.
 *
 *  - claude (Claude Code, npm @anthropic-ai/claude-code): Anthropic's Messages API at `/v1/messages`.
 *    ANTHROPIC_BASE_URL, ANTHROPIC_AUTH_TOKEN (sent as `Authorization: Bearer`; ANTHROPIC_API_KEY is cleared so a
 *    real key never leaves for the proxy and no "use this key?" prompt appears), ANTHROPIC_MODEL and every model
 *    slot (opus, sonnet, haiku, the small/fast one, subagents) = the model, CLAUDE_CODE_MAX_CONTEXT_TOKENS = the
 *    context (for a model name it does not know, Claude Code 2.1.328 takes this as the model's window, compacts
 *    within it and stops warning that it assumes 1M; `/context` shows it). Not CLAUDE_CODE_AUTO_COMPACT_WINDOW: it
 *    reads any value under 100k as 100k (and warns), and the compact window is the smaller of it and the model's
 *    window anyway. CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC, DISABLE_TELEMETRY, DISABLE_ERROR_REPORTING,
 *    DISABLE_AUTOUPDATER, and CLAUDE_CODE_ATTRIBUTION_HEADER=0 (the attribution block changes between requests and
 *    would break the reuse of the prompt's prefix in llama-server).
 *  - codex (OpenAI Codex CLI, npm @openai/codex): the Responses API at `/v1/responses`, through a provider given
 *    with `-c` overrides (`model_providers.gglib`, base URL `<proxy>/v1`, wire_api "responses", the key from
 *    GGLIB_API_KEY when there is one), `model_context_window` and `model_auto_compact_token_limit` (90 %), and
 *    analytics and update checks off. (Its `--oss` path works too, through the proxy's Ollama API; see README.)
 *  - opencode (npm opencode-ai): OPENCODE_CONFIG_CONTENT holds a provider "gglib" on the AI SDK's OpenAI-compatible
 *    package (chat completions at `<proxy>/v1`), the model with its context and output limits, as `model` and
 *    `small_model`; sharing and auto-update off; OPENCODE_DISABLE_AUTOUPDATE, OPENCODE_DISABLE_MODELS_FETCH,
 *    OPENCODE_DISABLE_LSP_DOWNLOAD and OPENCODE_DISABLE_DEFAULT_PLUGINS keep it off the network.
 */

export const AGENT_NAMES = ["claude", "codex", "opencode"] as const;
export type AgentName = (typeof AGENT_NAMES)[number];

export interface AgentInfo {
  name: AgentName;
  /** For messages: "Claude Code". */
  title: string;
  /** The executable looked up on PATH. */
  binary: string;
  /** The npm package that installs it (the missing-binary message names it; gglib never downloads it). */
  npmPackage: string;
  /**
   * The least context the agent works in, tokens: its system prompt and tool definitions (Claude Code's alone are
   * ~13k tokens, Codex's ~6k) plus room for files, tool results and the answer. At least 32k for every agent.
   */
  floorTokens: number;
  /** The proxy API it speaks. */
  api: "anthropic-messages" | "openai-responses" | "openai-chat";
  /** Its non-interactive mode, for help texts: `claude -p "…"`. */
  oneShot: string;
}

export const AGENTS: Readonly<Record<AgentName, AgentInfo>> = {
  claude: {
    name: "claude",
    title: "Claude Code",
    binary: "claude",
    npmPackage: "@anthropic-ai/claude-code",
    floorTokens: 32_768,
    api: "anthropic-messages",
    oneShot: '-p "explain this repo"',
  },
  codex: {
    name: "codex",
    title: "OpenAI Codex CLI",
    binary: "codex",
    npmPackage: "@openai/codex",
    floorTokens: 32_768,
    api: "openai-responses",
    oneShot: 'exec "explain this repo"',
  },
  opencode: {
    name: "opencode",
    title: "opencode",
    binary: "opencode",
    npmPackage: "opencode-ai",
    floorTokens: 32_768,
    api: "openai-chat",
    oneShot: 'run "explain this repo"',
  },
};

export function isAgentName(s: string): s is AgentName {
  return (AGENT_NAMES as readonly string[]).includes(s);
}

/** What the agent is pointed at. */
export interface AgentWiring {
  /** The proxy's origin, no trailing slash and no `/v1`: `http://127.0.0.1:8080`. */
  proxyUrl: string;
  /** The proxy's API key, when it requires one. */
  apiKey?: string | undefined;
  /** The model name as the proxy knows it. */
  model: string;
  /** The context the model runs with, tokens. */
  ctx: number;
  /** Arguments for the agent itself (after `--`). */
  args?: readonly string[];
  /** The most tokens one answer may have (claude: CLAUDE_CODE_MAX_OUTPUT_TOKENS; opencode: the model's output limit). */
  maxOutput?: number | undefined;
}

/** How to start the agent: the command line, the variables to set, the variables to remove. */
export interface AgentLaunch {
  agent: AgentName;
  command: string;
  args: string[];
  /** Set in the child's environment (over the inherited one). */
  env: Record<string, string>;
  /** Removed from the child's environment. */
  unset: string[];
}

/** The provider id the agents are given for the proxy (codex `-c model_providers.gglib`, opencode `gglib/<model>`). */
export const PROVIDER_ID = "gglib";

/** A key the agents send when the proxy has none (some refuse to start without one; the proxy ignores it). */
export const NO_KEY = "gglib-local";

export function agentLaunch(agent: AgentName, w: AgentWiring): AgentLaunch {
  const base = w.proxyUrl.replace(/\/+$/, "");
  const args = [...(w.args ?? [])];
  switch (agent) {
    case "claude":
      return { agent, command: AGENTS.claude.binary, args, env: claudeEnv(base, w), unset: ["ANTHROPIC_API_KEY"] };
    case "codex":
      return {
        agent,
        command: AGENTS.codex.binary,
        args: [...codexArgs(base, w), ...args],
        env: w.apiKey ? { GGLIB_API_KEY: w.apiKey } : {},
        unset: [],
      };
    case "opencode":
      return { agent, command: AGENTS.opencode.binary, args, env: opencodeEnv(base, w), unset: [] };
  }
}

function claudeEnv(base: string, w: AgentWiring): Record<string, string> {
  const ctx = String(w.ctx);
  return {
    ANTHROPIC_BASE_URL: base,
    ANTHROPIC_AUTH_TOKEN: w.apiKey ?? NO_KEY,
    ANTHROPIC_MODEL: w.model,
    ANTHROPIC_DEFAULT_OPUS_MODEL: w.model,
    ANTHROPIC_DEFAULT_SONNET_MODEL: w.model,
    ANTHROPIC_DEFAULT_HAIKU_MODEL: w.model,
    ANTHROPIC_SMALL_FAST_MODEL: w.model,
    CLAUDE_CODE_SUBAGENT_MODEL: w.model,
    // the model's window; CLAUDE_CODE_AUTO_COMPACT_WINDOW would be read as at least 100k (see above)
    CLAUDE_CODE_MAX_CONTEXT_TOKENS: ctx,
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1",
    CLAUDE_CODE_ATTRIBUTION_HEADER: "0",
    DISABLE_TELEMETRY: "1",
    DISABLE_ERROR_REPORTING: "1",
    DISABLE_AUTOUPDATER: "1",
    ...(w.maxOutput !== undefined ? { CLAUDE_CODE_MAX_OUTPUT_TOKENS: String(w.maxOutput) } : {}),
  };
}

/** A TOML string (basic string, escaped). */
function toml(s: string): string {
  return JSON.stringify(s);
}

function codexArgs(base: string, w: AgentWiring): string[] {
  const provider = [
    `name=${toml("gglib")}`,
    `base_url=${toml(`${base}/v1`)}`,
    `wire_api=${toml("responses")}`,
    ...(w.apiKey ? [`env_key=${toml("GGLIB_API_KEY")}`] : []),
  ].join(",");
  const c = (kv: string) => ["-c", kv];
  return [
    ...c(`model_provider=${toml(PROVIDER_ID)}`),
    ...c(`model_providers.${PROVIDER_ID}={${provider}}`),
    ...c(`model=${toml(w.model)}`),
    ...c(`model_context_window=${w.ctx}`),
    ...c(`model_auto_compact_token_limit=${Math.floor(w.ctx * 0.9)}`),
    ...c("analytics.enabled=false"),
    ...c("check_for_update_on_startup=false"),
  ];
}

/** opencode's config (the JSON of OPENCODE_CONFIG_CONTENT). */
export function opencodeConfig(
  base: string,
  w: Pick<AgentWiring, "apiKey" | "model" | "ctx" | "maxOutput">,
): Record<string, unknown> {
  const output = w.maxOutput ?? Math.min(8_192, Math.max(256, Math.floor(w.ctx / 4)));
  return {
    $schema: "https://opencode.ai/config.json",
    provider: {
      [PROVIDER_ID]: {
        npm: "@ai-sdk/openai-compatible",
        name: "gglib",
        options: { baseURL: `${base}/v1`, apiKey: w.apiKey ?? NO_KEY },
        models: { [w.model]: { name: w.model, tool_call: true, limit: { context: w.ctx, output } } },
      },
    },
    model: `${PROVIDER_ID}/${w.model}`,
    small_model: `${PROVIDER_ID}/${w.model}`,
    share: "disabled",
    autoupdate: false,
  };
}

function opencodeEnv(base: string, w: AgentWiring): Record<string, string> {
  return {
    OPENCODE_CONFIG_CONTENT: JSON.stringify(opencodeConfig(base, w)),
    OPENCODE_DISABLE_AUTOUPDATE: "1",
    OPENCODE_DISABLE_MODELS_FETCH: "1",
    OPENCODE_DISABLE_LSP_DOWNLOAD: "1",
    OPENCODE_DISABLE_DEFAULT_PLUGINS: "1",
  };
}

/** The child's environment: the inherited one, less `unset`, plus `env`. */
export function childEnv(
  inherited: Readonly<Record<string, string | undefined>>,
  launch: Pick<AgentLaunch, "env" | "unset">,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(inherited)) if (v !== undefined && !launch.unset.includes(k)) out[k] = v;
  return { ...out, ...launch.env };
}

/** A shell-quoted word (POSIX sh), for --print-env. */
export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, "'\\''")}'`;
}

/** `export K=V` lines and the command, for people who start the agent themselves. */
export function printEnvLines(l: AgentLaunch): string[] {
  return [
    ...l.unset.map((k) => `unset ${k}`),
    ...Object.entries(l.env).map(([k, v]) => `export ${k}=${shellQuote(v)}`),
    [l.command, ...l.args].map(shellQuote).join(" "),
  ];
}
