import type { Command } from "commander";
import { REASONING_FORMATS, type ServerConfig } from "../../core/config.js";
import { GglibError } from "../../core/errors.js";
import { PORT } from "../../core/units.js";
import { paths } from "../../core/paths.js";
import { detectLaunchSettings } from "../../models/launch-defaults.js";
import { resolveModelRef, type ResolveModelOptions } from "../../models/resolve.js";
import { serverConfigOf } from "../../models/settings.js";
import { modelNameOf } from "../../llama/args.js";
import { LlamaServerRunner } from "../../runner/llama-server-runner.js";
import {
  addOptions,
  choiceOption,
  numberOption,
  numberOrWordOption,
  readOptions,
  switchOption,
  textOption,
  type OptionTable,
} from "../options.js";
import { colors } from "../../term/color.js";
import { formatDuration } from "../../term/format.js";
import { ProgressLine } from "../../term/progress.js";
import { signalGroup } from "../../process/terminate/signals.js";

/** The flags that set the ServerConfig (they win over the model's own settings). */
const SERVER_OPTIONS: OptionTable<ServerConfig> = {
  port: numberOption("-p, --port <port>", "port for llama-server (default: the first free port from 9000)", {
    ...PORT,
    min: 1,
  }),
  host: textOption("--host <host>", "address to bind", "127.0.0.1"),
  basePort: {
    ...numberOption("--base-port <port>", "first port tried when --port is not given", { ...PORT, min: 1 }),
    defaultValue: 9000,
  },
  contextSize: numberOption("-c, --ctx <tokens>", "context size (0 = the model's trained context)", {
    kind: "integer",
    min: 0,
    example: "4096",
  }),
  gpuLayers: numberOrWordOption(
    "--ngl <layers>",
    "layers on the GPU: a number, auto or all",
    { kind: "integer", min: -1 },
    ["auto", "all"] as const,
  ),
  jinja: switchOption(
    "--jinja",
    "use the model's Jinja chat template (llama-server's default)",
    "turn Jinja templates off",
  ),
  reasoningFormat: choiceOption("--reasoning-format <format>", "how llama-server returns thinking", REASONING_FORMATS),
  reasoningBudget: numberOption("--reasoning-budget <tokens>", "thinking budget: -1 unrestricted, 0 no thinking", {
    kind: "integer",
    min: -1,
  }),
  parallel: numberOption("--parallel <slots>", "parallel request slots", { kind: "integer", min: 1 }),
  modelName: textOption("--name <name>", "model name clients use (default: the model's name or file stem)"),
};

interface RunOptions {
  readyTimeout: number;
  grace: number;
  verbose: boolean;
  json: boolean;
}

const RUN_OPTIONS: OptionTable<RunOptions> = {
  readyTimeout: {
    ...numberOption("--ready-timeout <seconds>", "give up loading after this long", { kind: "seconds", min: 1 }),
    defaultValue: 120,
  },
  grace: {
    ...numberOption("--grace <seconds>", "on stop, wait this long before SIGKILL", { kind: "seconds" }),
    defaultValue: 10,
  },
  verbose: switchOption("-v, --verbose", "print llama-server's log lines"),
  json: switchOption("--json", "print machine-readable JSON lines (ready, exited) on stdout"),
};

/**
 * The model argument (a path, a model folder, or a name from the config, the registry or the models folder: the
 * one resolver) → its ServerConfig by the one settings mapping, with the flags over it and the extra args last.
 */
export function serveConfig(
  model: string,
  extra: readonly string[],
  flags: Partial<ServerConfig>,
  where: ResolveModelOptions = {},
): ServerConfig {
  const base = serverConfigOf(resolveModelRef(model, where).entry);
  const config: ServerConfig = { ...base, ...flags };
  const extraArgs = [...(base.extraArgs ?? []), ...extra];
  if (extraArgs.length > 0) config.extraArgs = extraArgs;
  return config;
}

export function register(program: Command): void {
  const cmd = program
    .command("serve")
    .description("Run one model with a managed llama-server in the foreground (Ctrl-C stops it cleanly).")
    .argument("<model>", "a .gguf file, a model folder, or a model name or alias (gglib models list)")
    .argument("[llamaArgs...]", "extra llama-server arguments, after --");
  addOptions(addOptions(cmd, SERVER_OPTIONS), RUN_OPTIONS)
    .addHelpText(
      "after",
      `
Examples:
  gglib serve ./models/qwen3-4b.gguf
  gglib serve tiny.gguf --port 18555 --ctx 4096
  gglib serve think.gguf --reasoning-format deepseek -- --temp 0.6 --top-k 20
  gglib serve qwen3                       a registered model, with its settings
  GGLIB_LLAMA_SERVER=/opt/llama.cpp/build/bin/llama-server gglib serve tiny.gguf

Exit status: 0 after a clean stop (Ctrl-C / SIGTERM), 1 if the model failed to load or llama-server died.`,
    )
    .action(async (model: string, llamaArgs: string[], o: Record<string, unknown>) => {
      const run = readOptions(RUN_OPTIONS, o);
      process.exitCode = await serve(() => serveConfig(model, llamaArgs, readOptions(SERVER_OPTIONS, o)), {
        readyTimeout: run.readyTimeout ?? 120,
        grace: run.grace ?? 10,
        verbose: run.verbose === true,
        json: run.json === true,
      });
    });
}

function failedEvent(e: unknown): string {
  const error = e instanceof GglibError ? { kind: e.kind, message: e.message, ...e.details } : String(e);
  return JSON.stringify({ event: "failed", error }) + "\n";
}

async function serve(configure: () => ServerConfig, o: RunOptions): Promise<number> {
  const out = process.stdout;
  const c = colors(process.stderr);
  let explicit: ServerConfig;
  try {
    explicit = configure();
  } catch (e) {
    if (o.json) out.write(failedEvent(e));
    throw e;
  }
  // what the model calls for, where no flag says otherwise (e.g. a reasoning model → --reasoning-format deepseek)
  const { config, choices } = await detectLaunchSettings(explicit);
  if (!o.json)
    for (const ch of choices) process.stderr.write(c.dim(`${ch.setting}: ${String(ch.value)} (${ch.reason})\n`));
  const runner = new LlamaServerRunner({
    stopGraceMs: o.grace * 1000,
    readyTimeoutMs: o.readyTimeout * 1000,
    logDir: paths.logsDir(),
  });
  const { path: bin, caps } = await runner.binaryInfo();
  if (!o.json) process.stderr.write(c.dim(`llama-server: ${bin}${caps.version ? ` (${caps.version})` : ""}\n`));
  if (o.verbose) runner.on((e) => e.type === "log" && process.stderr.write(c.dim(e.line) + "\n"));

  const abort = new AbortController();
  let stopping = false;
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      // second Ctrl-C: no more waiting
      for (const h of runner.listRunning()) {
        signalGroup(h.pid, "SIGKILL");
      }
      process.exit(130);
    }
    stopping = true;
    if (!o.json) process.stderr.write(`\n${sig}: stopping llama-server…\n`);
    abort.abort();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  process.on("SIGHUP", onSignal);

  const bar = o.json ? undefined : new ProgressLine(`loading ${c.bold(modelNameOf(config))}`);
  let handle;
  try {
    handle = await runner.start(config, { signal: abort.signal, onProgress: (p) => bar?.update(p.value, p.stage) });
  } catch (e) {
    bar?.done();
    if (stopping) {
      if (!o.json) process.stderr.write("stopped before the model was ready.\n");
      return 0;
    }
    if (o.json) out.write(failedEvent(e));
    throw e;
  }
  bar?.done();
  const loadMs = Date.now() - handle.startedAt;
  if (o.json) {
    out.write(
      JSON.stringify({
        event: "ready",
        model: handle.model,
        url: handle.url,
        pid: handle.pid,
        port: handle.port,
        loadMs,
      }) + "\n",
    );
  } else {
    const cc = colors(out);
    out.write(`${cc.green("●")} ${cc.bold(handle.model)} ready in ${formatDuration(loadMs)}\n`);
    out.write(`  URL:        ${cc.cyan(handle.url)}\n`);
    out.write(`  OpenAI API: ${cc.cyan(handle.url + "/v1")}  (model "${handle.model}")\n`);
    out.write(`  pid ${handle.pid}; Ctrl-C to stop\n`);
  }

  // wait for a stop request or an unexpected exit
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolveExit) => {
    runner.on((e) => {
      if (e.type === "exited" && e.handle.id === handle.id) resolveExit({ code: e.exitCode, signal: e.signal });
      if (e.type === "health" && e.handle.id === handle.id && !o.json && !stopping)
        process.stderr.write(c.yellow(`health: ${e.status.status}\n`));
    });
  });
  const stopRequested = new Promise<void>((r) => abort.signal.addEventListener("abort", () => r(), { once: true }));
  const first = await Promise.race([
    exited.then((x) => ({ kind: "exited" as const, ...x })),
    stopRequested.then(() => ({ kind: "stop" as const })),
  ]);
  if (first.kind === "exited") {
    const tail = runner.logs(handle, 15);
    const how = first.signal ? `killed by ${first.signal}` : `exit code ${first.code}`;
    if (o.json)
      out.write(
        JSON.stringify({ event: "exited", expected: false, exitCode: first.code, signal: first.signal }) + "\n",
      );
    process.stderr.write(`gglib: llama-server for ${handle.model} exited unexpectedly (${how}).\n`);
    if (tail.length) process.stderr.write("Last lines of its log:\n" + tail.map((l) => "  " + l).join("\n") + "\n");
    return 1;
  }
  await runner.stopAll();
  if (o.json) out.write(JSON.stringify({ event: "exited", expected: true }) + "\n");
  else process.stderr.write("stopped.\n");
  return 0;
}
