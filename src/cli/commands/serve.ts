import type { Command } from "commander";
import { resolve } from "node:path";
import type { ServerConfig, ReasoningFormat } from "../../core/config.js";
import { GglibError } from "../../core/errors.js";
import { paths } from "../../core/paths.js";
import { detectedLaunchSettings } from "../../models/launch-defaults.js";
import { LlamaServerRunner } from "../../runner/llama-server-runner.js";
import { colors } from "../../term/color.js";
import { formatDuration } from "../../term/format.js";
import { ProgressLine } from "../../term/progress.js";
import { signalGroup } from "../../process/terminate/signals.js";

interface ServeOptions {
  port?: string;
  host?: string;
  basePort?: string;
  ctx?: string;
  ngl?: string;
  jinja?: boolean;
  reasoningFormat?: string;
  reasoningBudget?: string;
  parallel?: string;
  name?: string;
  readyTimeout?: string;
  grace?: string;
  verbose?: boolean;
  json?: boolean;
}

function intOpt(name: string, v: string | undefined, min: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min)
    throw new GglibError("invalid_config", `--${name} must be an integer ≥ ${min} (got ${JSON.stringify(v)}).`);
  return n;
}

/** Pure: CLI options → ServerConfig. */
export function serveConfig(model: string, extra: string[], o: ServeOptions): ServerConfig {
  let gpuLayers: ServerConfig["gpuLayers"];
  if (o.ngl !== undefined) gpuLayers = o.ngl === "auto" || o.ngl === "all" ? o.ngl : intOpt("ngl", o.ngl, -1);
  return {
    modelPath: resolve(model),
    modelName: o.name,
    port: intOpt("port", o.port, 1),
    basePort: intOpt("base-port", o.basePort, 1),
    host: o.host,
    contextSize: intOpt("ctx", o.ctx, 0),
    gpuLayers,
    jinja: o.jinja,
    reasoningFormat: o.reasoningFormat as ReasoningFormat | undefined,
    reasoningBudget: intOpt("reasoning-budget", o.reasoningBudget, -1),
    parallel: intOpt("parallel", o.parallel, 1),
    extraArgs: extra,
  };
}

export function register(program: Command): void {
  program
    .command("serve")
    .description("Run one model with a managed llama-server in the foreground (Ctrl-C stops it cleanly).")
    .argument("<model>", "path of a .gguf model file")
    .argument("[llamaArgs...]", "extra llama-server arguments, after --")
    .option("-p, --port <port>", "port for llama-server (default: the first free port from 9000)")
    .option("--host <host>", "address to bind", "127.0.0.1")
    .option("--base-port <port>", "first port tried when --port is not given", "9000")
    .option("-c, --ctx <tokens>", "context size (0 = the model's trained context)")
    .option("--ngl <layers>", "layers on the GPU: a number, auto or all")
    .option("--jinja", "use the model's Jinja chat template (llama-server's default)")
    .option("--no-jinja", "turn Jinja templates off")
    .option("--reasoning-format <format>", "none | deepseek | deepseek-legacy | auto")
    .option("--reasoning-budget <tokens>", "thinking budget: -1 unrestricted, 0 no thinking")
    .option("--parallel <slots>", "parallel request slots")
    .option("--name <name>", "model name clients use (default: the file name without .gguf)")
    .option("--ready-timeout <seconds>", "give up loading after this long", "120")
    .option("--grace <seconds>", "on stop, wait this long before SIGKILL", "10")
    .option("-v, --verbose", "print llama-server's log lines")
    .option("--json", "print machine-readable JSON lines (ready, exited) on stdout")
    .addHelpText(
      "after",
      `
Examples:
  gglib serve ./models/qwen3-4b.gguf
  gglib serve tiny.gguf --port 18555 --ctx 4096
  gglib serve think.gguf --reasoning-format deepseek -- --temp 0.6 --top-k 20
  GGLIB_LLAMA_SERVER=/opt/llama.cpp/build/bin/llama-server gglib serve tiny.gguf

Exit status: 0 after a clean stop (Ctrl-C / SIGTERM), 1 if the model failed to load or llama-server died.`,
    )
    .action(async (model: string, llamaArgs: string[], o: ServeOptions) => {
      process.exitCode = await serve(model, llamaArgs, o);
    });
}

async function serve(model: string, extra: string[], o: ServeOptions): Promise<number> {
  const out = process.stdout;
  const c = colors(process.stderr);
  const config = serveConfig(model, extra, o);
  // what the model calls for, where no flag says otherwise (e.g. a reasoning model → --reasoning-format deepseek)
  for (const choice of await detectedLaunchSettings(config.modelPath, config)) {
    (config as unknown as Record<string, unknown>)[choice.setting] = choice.value;
    if (!o.json) process.stderr.write(c.dim(`${choice.setting}: ${String(choice.value)} (${choice.reason})\n`));
  }
  const runner = new LlamaServerRunner({
    stopGraceMs: (intOpt("grace", o.grace, 0) ?? 10) * 1000,
    readyTimeoutMs: (intOpt("ready-timeout", o.readyTimeout, 1) ?? 120) * 1000,
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

  const name = config.modelName ?? model;
  const bar = o.json
    ? undefined
    : new ProgressLine(`loading ${c.bold(name.replace(/^.*\//, "").replace(/\.gguf$/i, ""))}`);
  let handle;
  try {
    handle = await runner.start(config, { signal: abort.signal, onProgress: (p) => bar?.update(p.value, p.stage) });
  } catch (e) {
    bar?.done();
    if (stopping) {
      if (!o.json) process.stderr.write("stopped before the model was ready.\n");
      return 0;
    }
    if (o.json)
      out.write(
        JSON.stringify({
          event: "failed",
          error: e instanceof GglibError ? { kind: e.kind, message: e.message, ...e.details } : String(e),
        }) + "\n",
      );
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
