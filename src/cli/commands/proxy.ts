import type { Command } from "commander";
import { existsSync } from "node:fs";
import { GglibError } from "../../core/errors.js";
import { paths } from "../../core/paths.js";
import { PORT } from "../../core/units.js";
import { Registry } from "../../models/registry.js";
import { modelSourceOptions } from "../../models/resolve.js";
import { startProxy, type ProxyOptions } from "../../proxy/index.js";
import {
  addOptions,
  listOption,
  numberOption,
  parseNumberOption,
  readOptions,
  switchOption,
  textOption,
  type OptionSpec,
  type OptionTable,
} from "../options.js";
import { colors } from "../../term/color.js";
import { formatBytes } from "../../term/format.js";
import { signalGroup } from "../../process/terminate/signals.js";

/** `auto`, or a size checked here (the proxy reads it again with the same parser). */
function autoOrSizeOption(flags: string, description: string): OptionSpec<string | number> {
  return {
    flags,
    description,
    parse: (text, flag) => (text.trim() === "auto" ? "auto" : parseNumberOption(flag, text, { kind: "size" })),
  };
}

/** The flags, as the ProxyOptions they set (flags win over the config file, which wins over defaults). */
const PROXY_OPTIONS: OptionTable<ProxyOptions> = {
  configPath: textOption("--config <file>", `YAML config (default: ${paths.configFile()} when it exists)`),
  modelsDir: textOption(
    "--models-dir <dir>",
    "folder of models: each *.gguf, or a subfolder with shards and/or an mmproj file (default: the config's modelsDir, else <data dir>/models when it exists)",
  ),
  host: textOption("--host <host>", "address to bind (default 127.0.0.1)"),
  port: numberOption("-p, --port <port>", "port (default 8080)", PORT),
  maxModels: numberOption("--max-models <n>", "at most this many models loaded at once", { kind: "integer", min: 1 }),
  memoryBudget: autoOrSizeOption(
    "--memory-budget <size>",
    "memory the models may use: auto (free VRAM, else RAM, minus headroom) or e.g. 24GiB",
  ),
  contextCache: autoOrSizeOption(
    "--context-cache <size>",
    "disk budget for conversations' KV caches saved at a swap and restored at the next load: auto, e.g. 20GiB, or 0 = off",
  ),
  ttlS: numberOption("--ttl <seconds>", "unload a model after this long idle (300, 5m, 1h; 0 = never)", {
    kind: "seconds",
  }),
  apiKeys: listOption("--api-key <key>", "require this key (Bearer or x-api-key); repeat for several"),
  insecure: switchOption("--insecure", "allow a non-loopback --host without an API key"),
  corsOrigins: listOption(
    "--cors <origin>",
    "let web pages of this origin (e.g. http://localhost:3000; '*' for any) call the proxy; repeat for several. Without it, requests from other origins are refused (403) except GET",
  ),
  defaultModel: textOption("--default-model <name>", "model used when a request names none"),
  drainTimeoutS: numberOption(
    "--drain-timeout <seconds>",
    "how long a swap waits for requests in flight (default 120)",
    {
      kind: "seconds",
    },
  ),
  loadTimeoutS: numberOption("--load-timeout <seconds>", "how long a model may take to load (default 300)", {
    kind: "seconds",
    min: 1,
  }),
};

interface OutputOptions {
  verbose: boolean;
  json: boolean;
}

const OUTPUT_OPTIONS: OptionTable<OutputOptions> = {
  verbose: switchOption("-v, --verbose", "print state changes and llama-server errors"),
  json: switchOption("--json", "print machine-readable JSON lines (ready, events) on stdout"),
};

/**
 * Parsed flags → startProxy options. The config file and the models folder are chosen by the rule every command
 * shares (src/models/resolve.ts modelSourceOptions): `--config`, else the data dir's config.yaml when it exists;
 * `--models-dir`, else the config's modelsDir, else `<data dir>/models` when it exists. So the proxy serves what
 * `gglib models list` lists. (A config file that cannot be read is left to startProxy, which says why.)
 */
export function proxyOptions(
  parsed: Readonly<Record<string, unknown>>,
  env: NodeJS.ProcessEnv = process.env,
): ProxyOptions {
  const r: ProxyOptions = readOptions(PROXY_OPTIONS, parsed);
  const sources = modelSourceOptions({ env, configPath: r.configPath, modelsDir: r.modelsDir });
  if (sources.configPath !== undefined) r.configPath = sources.configPath;
  if (sources.options.modelsDir !== undefined) r.modelsDir = sources.options.modelsDir;
  if (r.apiKeys?.length === 0) delete r.apiKeys;
  if (r.corsOrigins?.length === 0) delete r.corsOrigins;
  return r;
}

export function register(program: Command): void {
  const cmd = program
    .command("proxy")
    .description(
      "One OpenAI-compatible endpoint for all local models: loads on demand, swaps by memory, unloads when idle.",
    );
  addOptions(addOptions(cmd, PROXY_OPTIONS), OUTPUT_OPTIONS)
    .addHelpText(
      "after",
      `
Examples:
  gglib proxy --models-dir ~/models
  gglib proxy --models-dir ~/models --max-models 1 --port 8080
  gglib proxy --config ~/.config/gglib.yaml --memory-budget 20GiB --ttl 900
  gglib proxy --host 0.0.0.0 --api-key "$GGLIB_KEY"

  curl localhost:8080/v1/chat/completions -d '{"model":"qwen3-4b","messages":[{"role":"user","content":"hi"}]}'
  curl localhost:8080/v1/models            every model with its state (loaded/loading/unloaded/failed)
  curl localhost:8080/api/status           memory, pids, in-flight and queued requests per model
  curl localhost:8080/metrics              Prometheus metrics (never loads a model)

Browsers: web pages of other origins may not call the proxy (403) unless --cors names them; without --api-key,
only this machine's names are served (IP addresses, localhost, single-label and .local names, --host, the
hostname), so a page cannot reach it through a DNS name pointed at 127.0.0.1 (DNS rebinding).

Signals: SIGINT/SIGTERM drain requests, stop every llama-server and exit 0; SIGHUP reloads the config and
rescans the models folder (the config file is also watched). Config schema: schema/gglib-config.schema.json.`,
    )
    .action(async (o: Record<string, unknown>) => {
      const out = readOptions(OUTPUT_OPTIONS, o);
      process.exitCode = await runProxy(proxyOptions(o), { verbose: out.verbose === true, json: out.json === true });
    });
}

async function runProxy(opts: ProxyOptions, o: OutputOptions): Promise<number> {
  const c = colors(process.stderr);
  const out = process.stdout;
  const say = (line: string) => {
    if (o.json) out.write(JSON.stringify({ event: "log", message: line }) + "\n");
    else process.stderr.write(c.dim(line) + "\n");
  };
  opts.log = say;
  // models registered with `gglib models add` join the catalog (config entries win a name, then these, then the folder)
  let registry: Registry | undefined;
  if (existsSync(paths.registryDb())) {
    try {
      registry = Registry.open();
      opts.registry = registry;
    } catch (e) {
      say(`model registry not readable, skipped: ${(e as Error).message}`);
    }
  }
  const proxy = await startProxy(opts);
  const r = proxy.report;
  if (o.json) {
    out.write(JSON.stringify({ event: "ready", url: proxy.url, ...r }) + "\n");
  } else {
    const cc = colors(out);
    out.write(`${cc.green("●")} gglib proxy on ${cc.cyan(proxy.url + "/v1")}\n`);
    out.write(`  dashboard: ${cc.cyan(proxy.url + "/ui/")}\n`);
    out.write(
      `  memory budget: ${r.budget.bytes === null ? "unlimited" : formatBytes(r.budget.bytes)} (${r.budget.source})` +
        `${r.maxModels !== null ? `; at most ${r.maxModels} model(s)` : ""}\n`,
    );
    if (r.models.length === 0)
      out.write(
        cc.yellow("  no models found: pass --models-dir DIR or --config FILE, or add models with `gglib models add`\n"),
      );
    const size = (m: (typeof r.models)[number]) =>
      m.rpc
        ? `~${formatBytes(m.rpc.localBytes)} here + ~${formatBytes(m.rpc.remoteBytes)} on RPC ${m.rpc.workers.join(", ")}`
        : `~${formatBytes(m.estimatedBytes)}`;
    for (const m of r.models) {
      const flags = [m.pinned ? "pinned" : "", m.preload ? "preload" : ""].filter(Boolean).join(", ");
      out.write(
        `  ${cc.bold(m.name)}${m.aliases.length ? cc.dim(` (${m.aliases.join(", ")})`) : ""}  ${size(m)}  ${cc.dim(m.source)}${flags ? `  ${flags}` : ""}\n`,
      );
      if (m.swaFull) out.write(cc.dim(`    --swa-full ${m.swaFull.on ? "on" : "off"}: ${m.swaFull.reason}\n`));
    }
    for (const p of r.peers)
      out.write(
        `  peer ${cc.bold(p.name)} ${cc.cyan(p.url)}  ${p.up ? `${p.kind ?? "?"}, ${p.models.length} model(s)` : cc.yellow(`down: ${p.error ?? "?"}`)}\n`,
      );
    for (const cl of r.clashes) out.write(cc.yellow(`  name clash: ${cl}\n`));
    for (const w of r.warnings) out.write(cc.yellow(`  warning: ${w}\n`));
    out.write(cc.dim("  Ctrl-C to stop; SIGHUP reloads the config\n"));
  }
  proxy.controller.on((e) => {
    if (e.type === "log") return;
    if (o.json) out.write(JSON.stringify({ event: e.type, ...e }) + "\n");
    else if (
      o.verbose ||
      e.type === "crash" ||
      (e.type === "state" && (e.to === "ready" || e.to === "failed" || e.to === "stopping"))
    ) {
      if (e.type === "state") say(`${e.model}: ${e.from} → ${e.to}${e.reason ? ` (${e.reason})` : ""}`);
      else if (e.type === "crash")
        process.stderr.write(c.red(`${e.model}: llama-server exited unexpectedly (${e.reason})\n`));
      else if (o.verbose && e.type === "progress") say(`${e.model}: loading ${Math.round(e.value * 100)}%`);
    }
  });

  return await new Promise<number>((resolveExit) => {
    let signals = 0;
    const stop = (sig: NodeJS.Signals) => {
      signals++;
      if (signals > 1) {
        for (const h of proxy.controller.status()) {
          if (h.pid) {
            signalGroup(h.pid, "SIGKILL");
          }
        }
        process.exit(130);
      }
      say(`${sig}: draining requests and stopping models…`);
      proxy.close(10_000).then(
        () => {
          registry?.close();
          say("stopped.");
          process.off("SIGHUP", hup);
          resolveExit(0);
        },
        (e: unknown) => {
          process.stderr.write(`gglib: shutdown failed: ${String(e)}\n`);
          resolveExit(1);
        },
      );
    };
    const hup = () => {
      proxy.reload("SIGHUP").then(
        (x) =>
          say(
            `reloaded: added [${x.added.join(", ")}], removed [${x.removed.join(", ")}], changed [${x.changed.join(", ")}]`,
          ),
        (e: unknown) =>
          process.stderr.write(
            c.red(
              `reload failed, keeping the previous models: ${e instanceof GglibError ? e.describe() : String(e)}\n`,
            ),
          ),
      );
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
    process.on("SIGHUP", hup);
  });
}
