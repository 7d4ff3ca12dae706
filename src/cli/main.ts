import { Command, CommanderError } from "commander";
import { readFileSync } from "node:fs";
import { GglibError } from "../core/errors.js";

/**
 * The commands. Each module exports `register(program: Command): void` and is imported only when needed: a run
 * loads just the command it runs (the proxy's and the chat's dependencies cost ~0.5 s to import), so
 * `gglib --version` and `gglib serve` start fast. To add a command: one entry here.
 */
type CommandModule = { register(program: Command): void };
const COMMANDS: Record<string, () => Promise<CommandModule>> = {
  serve: () => import("./commands/serve.js"),
  proxy: () => import("./commands/proxy.js"),
  chat: () => import("./commands/chat.js"),
  models: () => import("./commands/models/index.js"),
  pull: () => import("./commands/pull.js"),
  llama: () => import("./commands/llama/index.js"),
  system: () => import("./commands/system.js"),
  "rpc-server": () => import("./commands/rpc-server.js"),
  launch: () => import("./commands/launch/index.js"),
};

/** Pure: which command modules a command line needs (none for --version, all for help or an unknown word). */
export function commandsFor(args: readonly string[]): string[] {
  const first = args.find((a) => !a.startsWith("-"));
  if (first === undefined) return args.some((a) => a === "-V" || a === "--version") ? [] : Object.keys(COMMANDS);
  if (first === "help") return Object.keys(COMMANDS);
  return first in COMMANDS ? [first] : Object.keys(COMMANDS);
}

/** package.json, found upward from this file (src/cli/ in a checkout, dist/src/cli/ when built). */
function readPackage(): { version: string } {
  for (const rel of ["../../package.json", "../../../package.json"]) {
    try {
      return JSON.parse(readFileSync(new URL(rel, import.meta.url), "utf8")) as { version: string };
    } catch {
      /* try the next */
    }
  }
  return { version: "0.0.0" };
}
const pkg = readPackage();

export async function buildProgram(args: readonly string[] = process.argv.slice(2)): Promise<Command> {
  const program = new Command();
  program
    .name("gglib")
    .description("Run local LLMs on llama.cpp: supervise llama-server, serve one OpenAI-compatible endpoint, chat.")
    .version(pkg.version, "-V, --version")
    .showHelpAfterError("(run with --help for usage)")
    .addHelpText(
      "after",
      `
Examples:
  gglib serve ./tiny.gguf --port 8081        run one model in the foreground
  gglib proxy --models-dir ~/models          one endpoint for every model in a folder
  gglib chat tiny-think                      talk to a model in the terminal
  gglib pull bartowski/Qwen3-4B-GGUF:Q4_K_M  download a model from Hugging Face
  gglib rpc-server --host 192.168.1.20       lend this machine's memory to a model split across hosts
  gglib launch claude -- -p "hi"             a coding agent (claude, codex, opencode) on a local model

Environment:
  GGLIB_LLAMA_SERVER   path of the llama-server binary to use
  GGLIB_RPC_SERVER     path of the rpc-server binary (gglib rpc-server)
  GGLIB_DATA_DIR       where gglib keeps its state (default: the platform's user data dir)
  HF_TOKEN             Hugging Face token for private and gated repos (gglib pull)
  NO_COLOR             disable colours`,
    );
  for (const name of commandsFor(args)) (await COMMANDS[name]!()).register(program);
  return program;
}

export async function main(argv: string[] = process.argv): Promise<number> {
  const program = await buildProgram(argv.slice(2));
  program.exitOverride();
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode;
    if (e instanceof GglibError) {
      process.stderr.write(`gglib: ${e.describe()}\n`);
      return 1;
    }
    process.stderr.write(`gglib: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    return 1;
  }
}

const isEntry = process.argv[1] !== undefined && /(?:gglib(?:\.js)?|main\.[jt]s)$/.test(process.argv[1]);
if (isEntry) {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`gglib: ${String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
