import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { Command, InvalidArgumentError, Option } from "commander";
import type { ServerConfig } from "../../core/config.js";
import { GglibError } from "../../core/errors.js";
import { paths } from "../../core/paths.js";
import { resolveLlamaServer } from "../../llama/binary.js";
import { isExecutable, pathCandidates } from "../../process/which.js";
import { resolveModelArg } from "../../chat/backend.js";
import { DEFAULT_CHAT_URL, runChat, type ChatSessionOptions } from "../../chat/session.js";

/** The command's flags: the session's own options, plus the few the command maps or handles itself. */
type ChatFlags = Pick<
  ChatSessionOptions,
  | "url"
  | "apiKey"
  | "system"
  | "think"
  | "maxTokens"
  | "temperature"
  | "json"
  | "stats"
  | "markdown"
  | "prompt"
  | "quiet"
  | "modelsDir"
> & {
  option?: Record<string, unknown>;
  ctxSize?: number;
  cli?: boolean;
};

function intArg(name: string, min: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer ≥ ${min}.`);
    return n;
  };
}

function floatArg(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError("must be a number ≥ 0.");
  return n;
}

/** `--option key=value` (repeatable): value parsed as JSON when it is JSON (numbers, booleans, objects), else text. */
function collectOption(v: string, prev: Record<string, unknown> | undefined): Record<string, unknown> {
  const eq = v.indexOf("=");
  if (eq <= 0) throw new InvalidArgumentError(`expected key=value, got "${v}".`);
  const key = v.slice(0, eq).trim();
  const raw = v.slice(eq + 1);
  let value: unknown = raw;
  try {
    value = JSON.parse(raw);
  } catch {
    value = raw;
  }
  return { ...(prev ?? {}), [key]: value };
}

export function register(program: Command): void {
  program
    .command("chat")
    .description("Chat with a model in the terminal: thinking shown apart from the answer, markdown, stats.")
    .argument("[model]", "model name (from the proxy, registry or models dir) or a .gguf path")
    .option(
      "--url <url>",
      `gglib proxy or OpenAI-compatible server to talk to (default $GGLIB_PROXY_URL or ${DEFAULT_CHAT_URL}; when nothing answers there and --url is not given, the model is started for the chat)`,
    )
    .option("--api-key <key>", "API key for a proxy that requires one (default $GGLIB_API_KEY)")
    .option("-s, --system <prompt>", "system prompt")
    .addOption(
      new Option(
        "--think <mode>",
        "show the thinking as it streams, or hide it (only its duration); default show on a terminal, hide in a pipe",
      ).choices(["show", "hide"]),
    )
    .option("-n, --max-tokens <n>", "most tokens per answer", intArg("--max-tokens", 1))
    .option("-t, --temperature <t>", "sampling temperature", floatArg)
    .option("-o, --option <key=value>", "extra request field, repeatable (e.g. -o seed=42 -o top_k=20)", collectOption)
    .option("-p, --prompt <text>", "ask this one question, print the answer and exit")
    .option("--json", "print one JSON object per answer (answer, thinking, stats)")
    .option("--stats", "print the stats line (default on a terminal; to stderr in a pipe)")
    .option("--no-stats", "do not print the stats line")
    .option("--no-markdown", "print the answer as plain text, not rendered markdown")
    .option("-q, --quiet", "no status lines on stderr in one-shot mode")
    .option("--models-dir <dir>", "folder to find models by name in when the chat starts the model itself")
    .option(
      "-c, --ctx-size <n>",
      "context size when the chat starts the model itself (and with --cli)",
      intArg("--ctx-size", 0),
    )
    .option("--cli", "hand the terminal to llama-cli with the model's settings instead")
    .addHelpText(
      "after",
      `
Talks to a running gglib proxy (--url, else $GGLIB_PROXY_URL, else ${DEFAULT_CHAT_URL}). With no proxy running
it starts the model with llama-server for the chat and stops it when you leave.

Examples:
  gglib chat tiny-think                         chat in the terminal (/help lists the commands)
  gglib chat ./models/qwen3-4b.gguf --think hide
  echo "why is the sky blue?" | gglib chat qwen  print only the answer (pipe mode)
  gglib chat qwen -p "2+2?" --json              one JSON object with answer, thinking and stats
  gglib chat --url http://gpu-box:8080 qwen     a proxy on another machine
  gglib chat --cli qwen                         llama-cli in the terminal

In the chat: /help, /model NAME, /system TEXT, /clear, /think show|hide, /save FILE, /exit.
A line ending with \\ continues on the next line; """ opens a block closed by """. Ctrl-C stops an answer.`,
    )
    .action(async (model: string | undefined, flags: ChatFlags) => {
      if (flags.cli) {
        process.exitCode = await runLlamaCli(model, flags);
        return;
      }
      process.exitCode = await runChat({
        ...(model !== undefined ? { model } : {}),
        ...(flags.url !== undefined ? { url: flags.url } : {}),
        ...(flags.apiKey !== undefined ? { apiKey: flags.apiKey } : {}),
        ...(flags.system !== undefined ? { system: flags.system } : {}),
        ...(flags.think !== undefined ? { think: flags.think } : {}),
        ...(flags.maxTokens !== undefined ? { maxTokens: flags.maxTokens } : {}),
        ...(flags.temperature !== undefined ? { temperature: flags.temperature } : {}),
        ...(flags.option ? { params: flags.option } : {}),
        ...(flags.prompt !== undefined ? { prompt: flags.prompt } : {}),
        ...(flags.modelsDir !== undefined ? { modelsDir: flags.modelsDir } : {}),
        ...(flags.ctxSize !== undefined ? { contextSize: flags.ctxSize } : {}),
        ...(flags.stats !== undefined ? { stats: flags.stats } : {}),
        json: flags.json === true,
        markdown: flags.markdown !== false,
        quiet: flags.quiet === true,
      });
    });
}

/** llama-cli: GGLIB_LLAMA_CLI → next to the llama-server in use → the gglib install → PATH. */
export async function resolveLlamaCli(env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const exe = process.platform === "win32" ? "llama-cli.exe" : "llama-cli";
  const looked: string[] = [];
  if (env.GGLIB_LLAMA_CLI) {
    if (await isExecutable(env.GGLIB_LLAMA_CLI)) return env.GGLIB_LLAMA_CLI;
    throw new GglibError(
      "binary_not_executable",
      `GGLIB_LLAMA_CLI points at ${env.GGLIB_LLAMA_CLI}, which is not an executable file.`,
      {
        hint: "Fix or unset GGLIB_LLAMA_CLI.",
      },
    );
  }
  const candidates: string[] = [];
  try {
    candidates.push(join(dirname((await resolveLlamaServer({ env })).path), exe));
  } catch {
    // no llama-server either: keep looking
  }
  candidates.push(join(paths.llamaDir(env), "bin", exe));
  candidates.push(...pathCandidates("llama-cli", env));
  for (const c of candidates) {
    looked.push(c);
    if (await isExecutable(c)) return c;
  }
  throw new GglibError("binary_not_found", "llama-cli was not found.", {
    hint: `Looked in: ${looked.slice(0, 4).join(", ")}${looked.length > 4 ? ", and PATH" : ""}. Install llama.cpp with \`gglib llama install\`, or set GGLIB_LLAMA_CLI.`,
  });
}

/** Argument list for llama-cli from the model's settings (no --interactive-first: newer builds reject it). */
export function llamaCliArgs(
  config: Pick<ServerConfig, "modelPath" | "contextSize" | "jinja" | "reasoningFormat" | "gpuLayers">,
  flags: Pick<ChatFlags, "system" | "maxTokens" | "temperature">,
): string[] {
  const args = ["-m", config.modelPath];
  if (config.contextSize !== undefined) args.push("-c", String(config.contextSize));
  if (config.gpuLayers !== undefined) args.push("-ngl", String(config.gpuLayers));
  if (config.jinja === false) args.push("--no-jinja");
  else args.push("--jinja");
  if (config.reasoningFormat) args.push("--reasoning-format", config.reasoningFormat);
  if (flags.system) args.push("-sys", flags.system);
  if (flags.maxTokens !== undefined) args.push("-n", String(flags.maxTokens));
  if (flags.temperature !== undefined) args.push("--temp", String(flags.temperature));
  return args;
}

async function runLlamaCli(model: string | undefined, flags: ChatFlags): Promise<number> {
  if (!model) {
    throw new GglibError("invalid_config", "gglib chat --cli needs a model.", {
      hint: "gglib chat --cli MODEL (a name or a .gguf path)",
    });
  }
  const { config } = resolveModelArg(model, {
    ...(flags.modelsDir ? { modelsDir: flags.modelsDir } : {}),
    ...(flags.ctxSize !== undefined ? { contextSize: flags.ctxSize } : {}),
  });
  const bin = await resolveLlamaCli();
  const args = llamaCliArgs(config, flags);
  process.stderr.write(`Executing: ${bin} ${args.map((a) => (/[\s"']/.test(a) ? JSON.stringify(a) : a)).join(" ")}\n`);
  // llama-cli owns the terminal (and Ctrl-C) until it exits.
  const ignore = () => undefined;
  process.on("SIGINT", ignore);
  try {
    return await new Promise<number>((resolve, reject) => {
      const child = spawn(bin, args, { stdio: "inherit" });
      child.on("error", (e) => reject(new GglibError("binary_not_executable", `Cannot run ${bin}: ${e.message}`)));
      child.on("exit", (code, signal) => resolve(code ?? (signal ? 128 + 2 : 1)));
    });
  } finally {
    process.off("SIGINT", ignore);
  }
}
