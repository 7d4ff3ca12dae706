import { Command, CommanderError } from "commander";
import { readFileSync } from "node:fs";
import { GglibError } from "../core/errors.js";
// One line per command module; each exports `register(program: Command): void`.
import { register as registerServe } from "./commands/serve.js";
import { register as registerModels } from "./commands/models.js";
import { register as registerLlama } from "./commands/llama.js";
import { register as registerChat } from "./commands/chat.js";
import { register as registerProxy } from "./commands/proxy.js";

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

export function buildProgram(): Command {
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

Environment:
  GGLIB_LLAMA_SERVER   path of the llama-server binary to use
  GGLIB_DATA_DIR       where gglib keeps its state (default: the platform's user data dir)
  NO_COLOR             disable colours`,
    );
  registerServe(program);
  registerModels(program);
  registerLlama(program);
  registerChat(program);
  registerProxy(program);
  return program;
}

export async function main(argv: string[] = process.argv): Promise<number> {
  const program = buildProgram();
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
