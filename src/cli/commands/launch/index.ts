/**
 * `gglib launch <agent>`: runs a coding agent (Claude Code, Codex, opencode) on a local model through the proxy.
 * The steps, each in its own module: the agent's binary on PATH (never downloaded); the proxy at the URL, or one
 * started here for the agent's lifetime (./proxy.ts); the model and its context (../../../agents/model.ts and
 * context.ts on the facts of ./facts.ts), reloaded with a larger context when the configured one is too small; the
 * agent's settings (../../../agents/agents.ts); then the agent, in the foreground, and the proxy stopped after it.
 */
import { spawn } from "node:child_process";
import type { Command } from "commander";
import {
  AGENT_NAMES,
  AGENTS,
  agentLaunch,
  childEnv,
  isAgentName,
  printEnvLines,
  type AgentLaunch,
  type AgentName,
} from "../../../agents/agents.js";
import { planContext } from "../../../agents/context.js";
import { pickModel } from "../../../agents/model.js";
import { GglibError } from "../../../core/errors.js";
import { which } from "../../../process/which.js";
import { colors } from "../../../term/color.js";
import { addOptions, numberOption, readOptions, switchOption, textOption, type OptionTable } from "../../options.js";
import { budgetBytes, modelFacts, fitsContext, type ModelFacts } from "./facts.js";
import { DEFAULT_PROXY_URL, isLoopbackUrl, probeProxy, proxyUrlOf, startOwnProxy, type OwnProxy } from "./proxy.js";

interface LaunchFlags {
  model: string;
  url: string;
  ctx: number;
  apiKey: string;
  maxOutput: number;
  modelsDir: string;
  config: string;
  printEnv: boolean;
  json: boolean;
  quiet: boolean;
}

const LAUNCH_OPTIONS: OptionTable<LaunchFlags> = {
  model: textOption(
    "-m, --model <name>",
    "the model (default: a loaded one, else the first, that holds the agent's context)",
  ),
  url: textOption(
    "--url <url>",
    `the gglib proxy (default $GGLIB_PROXY_URL, else the config file's host and port, else ${DEFAULT_PROXY_URL}); when none answers there, one is started for the agent's lifetime`,
  ),
  ctx: numberOption("-c, --ctx <tokens>", "context the model runs with (default: its configured one, at least 32768)", {
    kind: "integer",
    min: 1,
    example: "65536",
  }),
  apiKey: textOption("--api-key <key>", "the proxy's API key, when it requires one (default $GGLIB_API_KEY)"),
  maxOutput: numberOption(
    "--max-output <tokens>",
    "most tokens per answer (claude and opencode; codex leaves it to the model)",
    { kind: "integer", min: 1, example: "4096" },
  ),
  modelsDir: textOption("--models-dir <dir>", "models folder of the proxy started when none is running"),
  config: textOption("--config <file>", "config file of the proxy started when none is running"),
  printEnv: switchOption("--print-env", "print the variables and the command line (sh) instead of starting the agent"),
  json: switchOption("--json", "print what would be run as one JSON object instead of starting the agent"),
  quiet: switchOption("-q, --quiet", "no status lines on stderr"),
};

export function register(program: Command): void {
  const cmd = program
    .command("launch")
    .description("Run a coding agent (Claude Code, Codex, opencode) on a local model through the gglib proxy.")
    .argument("<agent>", `the agent: ${AGENT_NAMES.join(", ")}`)
    .argument("[agentArgs...]", "arguments for the agent, after --");
  addOptions(cmd, LAUNCH_OPTIONS)
    .addHelpText(
      "after",
      `
The agent's binary must be on PATH (npm install -g @anthropic-ai/claude-code, @openai/codex or opencode-ai).
It gets the proxy's URL, its key, the model and the context window in its environment or on its command line;
its own config files are not touched, and its traffic to the vendor (telemetry, updates) is turned off. The model
runs with at least ${AGENTS.claude.floorTokens} tokens of context (capped by its trained context and the memory budget); a proxy
started here loads it with that context, a running one must already have it (the error says how).

Examples:
  gglib launch claude                                 Claude Code in this terminal, on the first model that fits
  gglib launch claude --model qwen3-coder -- -p "explain this repo"     one question, print mode
  gglib launch codex -- exec "add a test for the parser"                Codex, non-interactive
  gglib launch opencode --ctx 65536 -- run "fix the failing test"       opencode with a 64k context
  gglib launch codex --print-env                      the variables and the command, to start it yourself
  gglib launch claude --url http://gpu-box:8080 --api-key "$KEY" --json`,
    )
    .action(async (agent: string, agentArgs: string[], o: Record<string, unknown>) => {
      if (!isAgentName(agent)) {
        throw new GglibError("invalid_config", `Unknown agent '${agent}'.`, {
          hint: `Choose one of: ${AGENT_NAMES.join(", ")}. Example: gglib launch claude`,
        });
      }
      process.exitCode = await runLaunch(agent, agentArgs, readOptions(LAUNCH_OPTIONS, o));
    });
}

async function runLaunch(agent: AgentName, agentArgs: string[], f: Partial<LaunchFlags>): Promise<number> {
  const info = AGENTS[agent];
  const c = colors(process.stderr);
  const say = (line: string) => {
    if (!f.quiet) process.stderr.write(line + "\n");
  };
  // what needs no proxy is checked first: --ctx against the agent's floor
  const early = planContext({ floor: info.floorTokens, requested: f.ctx });
  if (!early.ok) throw new GglibError("invalid_config", `gglib launch ${agent}: ${early.message}`);
  const printOnly = f.printEnv === true || f.json === true;
  const bin = printOnly ? info.binary : await which(info.binary);
  if (!bin) {
    throw new GglibError("binary_not_found", `${info.title} (\`${info.binary}\`) is not on PATH.`, {
      hint: `Install it with: npm install -g ${info.npmPackage}   (gglib does not download it for you)`,
    });
  }
  let url = proxyUrlOf(f.url, process.env, f.config);
  let apiKey = f.apiKey ?? (process.env.GGLIB_API_KEY || undefined);
  const probe = await probeProxy(url, apiKey);
  if (probe.kind === "auth") {
    throw new GglibError(
      "invalid_config",
      `The gglib proxy at ${url} ${apiKey ? "refused the API key given" : "requires an API key"}.`,
      { hint: "Pass its key with --api-key KEY or GGLIB_API_KEY=KEY." },
    );
  }
  if (probe.kind === "other") {
    throw new GglibError("not_running", `${url} answers HTTP ${probe.status} to /api/status: not a gglib proxy.`, {
      hint: "Point --url at a gglib proxy, or at a free port on this machine to have one started.",
    });
  }
  let own: OwnProxy | undefined;
  if (probe.kind === "none") {
    if (!isLoopbackUrl(url)) {
      throw new GglibError("not_running", `No gglib proxy answers at ${url} (${probe.error}).`, {
        hint: "Start it there (gglib proxy), or leave --url out to have one started on this machine.",
      });
    }
    say(c.dim(`no gglib proxy at ${url}: starting one for this session`));
    own = await startOwnProxy({ url, configPath: f.config, modelsDir: f.modelsDir });
    url = own.url;
    apiKey = own.apiKey ?? apiKey;
  }
  try {
    const plan = await chooseModel(agent, url, apiKey, f, own);
    const launch = agentLaunch(agent, {
      proxyUrl: url,
      apiKey,
      model: plan.model.name,
      ctx: plan.ctx,
      args: agentArgs,
      maxOutput: f.maxOutput,
    });
    const facts = [
      plan.model.trained !== undefined ? `trained ${plan.model.trained}` : "",
      plan.fits !== undefined ? `fits ${plan.fits}` : "",
    ].filter(Boolean);
    say(
      `${c.green("●")} ${info.title} → ${c.bold(plan.model.name)}, context ${plan.ctx} tokens` +
        `${facts.length ? c.dim(` (${facts.join(", ")})`) : ""} via ${c.cyan(url)}${own ? c.dim(" (started for this session)") : ""}`,
    );
    if (plan.model.tools === false)
      say(c.yellow(`warning: ${plan.model.name}'s chat template takes no tools: the agent's tool calls will not work`));
    if (f.json) {
      const out = {
        agent,
        url,
        proxy: own ? "started" : "running",
        model: plan.model.name,
        ctx: plan.ctx,
        trained: plan.model.trained ?? null,
        fits: plan.fits ?? null,
        command: launch.command,
        args: launch.args,
        env: launch.env,
        unset: launch.unset,
      };
      process.stdout.write(JSON.stringify(out) + "\n");
      return 0;
    }
    if (f.printEnv) {
      if (own) say(c.yellow(`# no proxy was running: start \`gglib proxy\` before the agent (this one stops now)`));
      process.stdout.write(printEnvLines(launch).join("\n") + "\n");
      return 0;
    }
    return await runAgent(bin, launch);
  } finally {
    if (own) {
      say(c.dim("stopping the proxy started for this session"));
      await own.close();
    }
  }
}

interface Chosen {
  model: ModelFacts;
  ctx: number;
  fits?: number | undefined;
}

async function chooseModel(
  agent: AgentName,
  url: string,
  apiKey: string | undefined,
  f: Partial<LaunchFlags>,
  own: OwnProxy | undefined,
): Promise<Chosen> {
  const floor = AGENTS[agent].floorTokens;
  const facts = await modelFacts(url, apiKey);
  const pick = pickModel(facts, floor, f.model);
  if (!pick.ok) throw new GglibError("model_not_found", `gglib launch ${agent}: ${pick.message}`);
  const model = facts.find((m) => m.name === pick.name)!;
  const fits = fitsContext(model, await budgetBytes(url, apiKey));
  // what the model runs with: its configured context (the trained one when none is set), but no more than fits
  const effective =
    model.configured !== undefined && fits !== undefined ? Math.min(model.configured, fits) : model.configured;
  const plan = planContext({ floor, requested: f.ctx, configured: effective, trained: model.trained, fits });
  if (!plan.ok) {
    throw new GglibError("invalid_config", `gglib launch ${agent}: model '${model.name}': ${plan.message}`, {
      hint: f.model
        ? "Choose a model trained on a longer context (--model NAME), or give the proxy more memory (--memory-budget)."
        : "Name a model that holds it with --model NAME.",
    });
  }
  if (!plan.load) {
    // a proxy of ours is told the context that fits, so llama-server does not try the larger one
    if (own && model.path && plan.ctx !== model.configured)
      await own.setContext(model.name, model.path, plan.ctx * (model.parallel ?? 1));
    return { model, ctx: plan.ctx, fits };
  }
  if (!own || !model.path) {
    throw new GglibError(
      "invalid_config",
      `gglib launch ${agent}: the proxy at ${url} runs '${model.name}' with ${model.configured ?? "its default"} tokens of context; the agent needs ${plan.ctx}.`,
      {
        hint: `Set \`ctx: ${plan.ctx}\` for '${model.name}' in that proxy's config (or \`gglib models set ${model.name} ctx=${plan.ctx}\` for a registered model) and reload it (SIGHUP), or stop that proxy: gglib launch then starts its own with the context the agent needs.`,
      },
    );
  }
  await own.setContext(model.name, model.path, plan.ctx * (model.parallel ?? 1));
  const after = (await modelFacts(url, apiKey)).find((m) => m.name === model.name);
  if (after?.configured !== plan.ctx) {
    throw new GglibError(
      "invalid_config",
      `gglib launch ${agent}: '${model.name}' comes from the config file with ${after?.configured ?? "another"} tokens of context; the agent needs ${plan.ctx}.`,
      {
        hint: `Set \`ctx: ${plan.ctx}\` for '${model.name}' in the config file, or pass --ctx ${after?.configured ?? plan.ctx}.`,
      },
    );
  }
  return { model: after, ctx: plan.ctx, fits };
}

/** The agent in the foreground: the terminal is its (Ctrl-C goes to it); its exit code is ours. */
async function runAgent(bin: string, launch: AgentLaunch): Promise<number> {
  const ignore = () => undefined;
  process.on("SIGINT", ignore);
  try {
    return await new Promise<number>((resolve, reject) => {
      const child = spawn(bin, launch.args, { stdio: "inherit", env: childEnv(process.env, launch) });
      const forward = (sig: NodeJS.Signals) => child.kill(sig);
      process.on("SIGTERM", forward);
      process.on("SIGHUP", forward);
      const done = () => {
        process.off("SIGTERM", forward);
        process.off("SIGHUP", forward);
      };
      child.on("error", (e) => {
        done();
        reject(new GglibError("binary_not_executable", `Cannot run ${bin}: ${e.message}`));
      });
      child.on("exit", (code, signal) => {
        done();
        resolve(code ?? (signal === "SIGINT" ? 130 : signal === "SIGTERM" ? 143 : 1));
      });
    });
  } finally {
    process.off("SIGINT", ignore);
  }
}
