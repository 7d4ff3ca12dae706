import { spawn } from "node:child_process";
import type { Command } from "commander";
import type { ServerConfig } from "../../core/config.js";
import { GglibError } from "../../core/errors.js";
import { resolveLlamaCli } from "../../llama/binary.js";
import { resolveModelArg } from "../../chat/backend.js";
import { DEFAULT_CHAT_URL, runChat, type ChatSessionOptions } from "../../chat/session.js";
import {
  addOptions,
  choiceOption,
  numberOption,
  parseKeyValue,
  readOptions,
  switchOption,
  textOption,
  type OptionTable,
} from "../options.js";

/** The flags: the chat session's options they set, and --cli. */
type ChatFlags = Pick<
  ChatSessionOptions,
  | "url"
  | "apiKey"
  | "system"
  | "think"
  | "maxTokens"
  | "temperature"
  | "params"
  | "json"
  | "stats"
  | "markdown"
  | "prompt"
  | "quiet"
  | "modelsDir"
  | "contextSize"
> & { cli?: boolean };

const CHAT_OPTIONS: OptionTable<ChatFlags> = {
  url: textOption(
    "--url <url>",
    `gglib proxy or OpenAI-compatible server to talk to (default $GGLIB_PROXY_URL or ${DEFAULT_CHAT_URL}; when nothing answers there and --url is not given, the model is started for the chat)`,
  ),
  apiKey: textOption("--api-key <key>", "API key for a proxy that requires one (default $GGLIB_API_KEY)"),
  system: textOption("-s, --system <prompt>", "system prompt"),
  think: choiceOption(
    "--think <mode>",
    "show the thinking as it streams, or hide it (only its duration); default show on a terminal, hide in a pipe",
    ["show", "hide"] as const,
  ),
  maxTokens: numberOption("-n, --max-tokens <n>", "most tokens per answer", { kind: "integer", min: 1 }),
  temperature: numberOption("-t, --temperature <t>", "sampling temperature", { kind: "number", min: 0 }),
  params: {
    flags: "-o, --option <key=value>",
    description: "extra request field, repeatable (e.g. -o seed=42 -o top_k=20)",
    parse: parseKeyValue,
  },
  prompt: textOption("-p, --prompt <text>", "ask this one question, print the answer and exit"),
  json: switchOption("--json", "print one JSON object per answer (answer, thinking, stats)"),
  stats: switchOption(
    "--stats",
    "print the stats line (default on a terminal; to stderr in a pipe)",
    "do not print the stats line",
  ),
  markdown: switchOption("--no-markdown", "print the answer as plain text, not rendered markdown"),
  quiet: switchOption("-q, --quiet", "no status lines on stderr in one-shot mode"),
  modelsDir: textOption("--models-dir <dir>", "folder to find models by name in when the chat starts the model itself"),
  contextSize: numberOption(
    "-c, --ctx-size <n>",
    "context size when the chat starts the model itself (and with --cli)",
    {
      kind: "integer",
      min: 0,
      example: "4096",
    },
  ),
  cli: switchOption("--cli", "hand the terminal to llama-cli with the model's settings instead"),
};

export function register(program: Command): void {
  const cmd = program
    .command("chat")
    .description("Chat with a model in the terminal: thinking shown apart from the answer, markdown, stats.")
    .argument("[model]", "model name (from the proxy, config, registry or models dir) or a .gguf path");
  addOptions(cmd, CHAT_OPTIONS)
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
    .action(async (model: string | undefined, o: Record<string, unknown>) => {
      const { cli, ...flags } = readOptions(CHAT_OPTIONS, o);
      if (cli) {
        process.exitCode = await runLlamaCli(model, flags);
        return;
      }
      process.exitCode = await runChat({
        ...flags,
        ...(model !== undefined ? { model } : {}),
        json: flags.json === true,
        markdown: flags.markdown !== false,
        quiet: flags.quiet === true,
      });
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
    ...(flags.contextSize !== undefined ? { contextSize: flags.contextSize } : {}),
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
