import { basename, join } from "node:path";
import { errorMessage, GglibError, isGglibError } from "../core/errors.js";
import type { LoadProgress } from "../core/handle.js";
import { dataDir } from "../core/paths.js";
import { colorEnabled } from "../term/color.js";
import { ProgressLine } from "../term/progress.js";
import { LlamaServerRunner } from "../runner/llama-server-runner.js";
import pc from "picocolors";
import { looksLikePath, ProxyBackend, resolveModelArg, RunnerBackend, type ChatBackend } from "./backend.js";
import { ChatClient, ChatHttpError } from "./client.js";
import { HELP_TEXT, parseSlashCommand, unescapeMessage, type SlashCommand } from "./commands.js";
import { Conversation, saveConversation } from "./conversation.js";
import { PromptReader } from "./input.js";
import { ChatRenderer, type ThinkMode, type TurnResult } from "./render.js";

/**
 * `gglib chat`: connect (proxy, or a llama-server started for the chat), then either one question from a pipe /
 * --prompt, or the interactive loop. Returns the process exit code; never leaves a server running.
 */

export const DEFAULT_CHAT_URL = "http://127.0.0.1:8080";

export interface ChatSessionOptions {
  /** A model name or a .gguf path. */
  model?: string;
  /** Server given with --url (then a missing server is an error, not a reason to start one). */
  url?: string;
  /** Sent as `Authorization: Bearer` to the proxy (default $GGLIB_API_KEY). */
  apiKey?: string;
  system?: string;
  think?: ThinkMode;
  maxTokens?: number;
  temperature?: number;
  /** Extra request fields (--option key=value). */
  params?: Record<string, unknown>;
  json?: boolean;
  stats?: boolean;
  markdown?: boolean;
  /** Ask this and exit (instead of reading stdin / the prompt). */
  prompt?: string;
  quiet?: boolean;
  modelsDir?: string;
  contextSize?: number;
  readyTimeoutMs?: number;
  stdin?: NodeJS.ReadStream;
  stdout?: NodeJS.WriteStream;
  stderr?: NodeJS.WriteStream;
  env?: NodeJS.ProcessEnv;
  /** Default <data dir>/chat_history. */
  historyFile?: string;
}

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;
export const EXIT_INTERRUPTED = 130;

export async function runChat(o: ChatSessionOptions): Promise<number> {
  const session = new ChatSession(o);
  return session.run();
}

class ChatSession {
  private readonly stdin: NodeJS.ReadStream;
  private readonly stdout: NodeJS.WriteStream;
  private readonly stderr: NodeJS.WriteStream;
  private readonly env: NodeJS.ProcessEnv;
  private readonly interactive: boolean;
  private readonly c: ReturnType<typeof pc.createColors>;
  private readonly ce: ReturnType<typeof pc.createColors>;
  private backend: ChatBackend | undefined;
  private renderer!: ChatRenderer;
  private conv!: Conversation;
  private readonly forcedOpen = new Map<string, boolean>();
  /** Aborts what is running now (a load or an answer). */
  private current: AbortController | undefined;
  private signalled: NodeJS.Signals | undefined;
  private reader: PromptReader | undefined;

  constructor(private readonly o: ChatSessionOptions) {
    this.stdin = o.stdin ?? process.stdin;
    this.stdout = o.stdout ?? process.stdout;
    this.stderr = o.stderr ?? process.stderr;
    this.env = o.env ?? process.env;
    this.interactive = o.prompt === undefined && Boolean(this.stdin.isTTY) && Boolean(this.stdout.isTTY);
    this.c = pc.createColors(colorEnabled(this.stdout, this.env));
    this.ce = pc.createColors(colorEnabled(this.stderr, this.env));
  }

  async run(): Promise<number> {
    const onSignal = (sig: NodeJS.Signals) => {
      this.signalled ??= sig;
      this.current?.abort();
      this.reader?.close();
    };
    const signals: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];
    for (const s of signals) process.on(s, onSignal);
    // The reader of our output went away (`gglib chat m | head -1`): stop generating, clean up, exit quietly.
    let outputGone = false;
    const onOutputError = (e: NodeJS.ErrnoException) => {
      if (e.code !== "EPIPE" && e.code !== "ERR_STREAM_DESTROYED") return;
      outputGone = true;
      this.current?.abort();
      this.reader?.close();
    };
    this.stdout.on("error", onOutputError);
    try {
      const code = await this.runInner();
      return outputGone ? EXIT_OK : code;
    } catch (e) {
      if (outputGone) return EXIT_OK;
      this.fail(e);
      return this.signalled ? EXIT_INTERRUPTED : isGglibError(e, "invalid_config") ? EXIT_USAGE : EXIT_FAILED;
    } finally {
      await this.shutdown();
      for (const s of signals) process.off(s, onSignal);
      this.stdout.off("error", onOutputError);
    }
  }

  private async runInner(): Promise<number> {
    const live = Boolean(this.stdout.isTTY);
    const color = colorEnabled(this.stdout, this.env);
    this.renderer = new ChatRenderer({
      out: this.stdout,
      err: this.stderr,
      live,
      color,
      markdown: this.o.markdown !== false && live && color,
      think: this.o.think ?? (live ? "show" : "hide"),
      json: this.o.json === true,
      stats: this.o.stats ?? live,
    });

    // One-shot: read the question first, so an empty pipe fails before anything is started.
    let question: string | undefined;
    if (!this.interactive) {
      if (this.o.prompt === undefined && this.stdin.isTTY) {
        this.stderr.write("(stdout is not a terminal: type the question, then Ctrl-D on an empty line)\n");
      }
      question = this.o.prompt ?? (await readAll(this.stdin));
      if (question.trim() === "") {
        this.stderr.write(
          `gglib chat: nothing to ask: stdin was empty.\n  Pipe a question in (echo "why is the sky blue?" | gglib chat MODEL) or pass --prompt TEXT.\n`,
        );
        return EXIT_USAGE;
      }
    }

    const backend = await this.connect();
    if (!backend) return this.signalled ? EXIT_INTERRUPTED : EXIT_FAILED;
    this.backend = backend;
    this.conv = new Conversation(backend.model, this.o.system);

    if (!this.interactive) return this.oneShot(question ?? "");
    return this.repl();
  }

  // ---- connecting ------------------------------------------------------------------------------------------------

  private info(msg: string): void {
    if (this.interactive) this.stdout.write(this.c.dim(msg) + "\n");
    else if (!this.o.quiet) this.stderr.write(msg + "\n");
  }

  private fail(e: unknown): void {
    const msg = e instanceof GglibError ? e.describe() : errorMessage(e);
    if (this.interactive) this.stdout.write(this.c.red(`error: ${msg}`) + "\n");
    else this.stderr.write(`gglib chat: ${msg}\n`);
  }

  private async connect(): Promise<ChatBackend | undefined> {
    const url = (this.o.url ?? (this.env.GGLIB_PROXY_URL || DEFAULT_CHAT_URL)).replace(/\/+$/, "");
    const modelArg = this.o.model;
    const apiKey = this.o.apiKey ?? (this.env.GGLIB_API_KEY || undefined);
    const client = new ChatClient(url, apiKey);
    const wantsFile = modelArg !== undefined && looksLikePath(modelArg);
    const probe = wantsFile && this.o.url === undefined ? "down" : await client.probe();
    if (probe !== "down") {
      const models = await client.models();
      const isGglib = models.some((m) => m.ownedBy === "gglib");
      const what = isGglib ? "the gglib proxy" : "the server";
      let model = modelArg;
      if (model === undefined) {
        if (models.length === 1) model = models[0]?.id;
        else if (models.length > 1) {
          await client.close();
          throw new GglibError(
            "invalid_config",
            `Which model? ${what} at ${url} has ${models.length}: ${models.map((m) => m.id).join(", ")}.`,
            {
              hint: `Name one: gglib chat ${models[0]?.id ?? "MODEL"}`,
            },
          );
        } else model = "";
      } else if (isGglib && !models.some((m) => m.id === model || m.aliases.includes(model!))) {
        await client.close();
        throw new GglibError("model_not_found", `The gglib proxy at ${url} has no model "${model}".`, {
          hint: models.length
            ? `It has: ${models.map((m) => m.id).join(", ")}.`
            : "It has no models: start it with --models-dir or --config.",
        });
      }
      const backend = new ProxyBackend(client, model ?? "", isGglib);
      const loaded = models.find((m) => m.id === model || m.aliases.includes(model ?? ""))?.loaded;
      this.info(
        `Talking to ${what} at ${url}${model ? ` (model ${model}${isGglib && loaded === false ? ", loads on the first message" : ""})` : ""}.`,
      );
      await this.detectTemplate(backend);
      return backend;
    }
    await client.close();
    if (this.o.url !== undefined) {
      throw new GglibError("not_running", `Nothing answers at ${url}.`, {
        hint: "Start it (`gglib proxy`), fix --url, or leave --url out to start the model directly.",
      });
    }
    if (modelArg === undefined) {
      throw new GglibError("invalid_config", `No gglib proxy at ${url}, and no model was named.`, {
        hint: "Name a model to start it for this chat: gglib chat MODEL (a model name or a .gguf path), or start `gglib proxy`.",
      });
    }
    const runner = new LlamaServerRunner({ healthIntervalMs: 0 });
    const backend = new RunnerBackend({
      runner,
      env: this.env,
      ...(this.o.modelsDir ? { modelsDir: this.o.modelsDir } : {}),
      ...(this.o.contextSize !== undefined ? { contextSize: this.o.contextSize } : {}),
      ...(this.o.readyTimeoutMs !== undefined ? { readyTimeoutMs: this.o.readyTimeoutMs } : {}),
    });
    this.backend = backend;
    const why = wantsFile ? "" : `No gglib proxy at ${url}: `;
    const shown = wantsFile ? basename(modelArg) : modelArg;
    if (!(await this.loadModel(backend, modelArg, `${why}starting ${shown} with llama-server…`, shown)))
      return undefined;
    const h = backend.serverHandle;
    this.info(
      `Started ${backend.model}${h ? ` (llama-server pid ${h.pid}, port ${h.port})` : ""}; it stops when the chat ends.`,
    );
    await this.detectTemplate(backend);
    return backend;
  }

  /** Start (or switch to) a model through the runner, with a progress line; false when cancelled. */
  private async loadModel(backend: ChatBackend, model: string, intro: string, label = model): Promise<boolean> {
    this.info(intro);
    const stream = this.interactive ? this.stdout : this.stderr;
    const progress = this.o.quiet && !this.interactive ? undefined : new ProgressLine(`loading ${label}`, { stream });
    const ac = new AbortController();
    this.current = ac;
    if (this.reader) {
      this.reader.setBusy(true);
      this.reader.onInterrupt = () => ac.abort();
    }
    try {
      await backend.setModel(
        model,
        (p: LoadProgress) => progress?.update(p.value, p.stages.length > 1 ? p.stage : ""),
        ac.signal,
      );
      progress?.done();
      return true;
    } catch (e) {
      progress?.done();
      if (ac.signal.aborted) {
        this.info(`Loading ${model} was cancelled.`);
        return false;
      }
      throw e;
    } finally {
      this.current = undefined;
      this.reader?.setBusy(false);
    }
  }

  private async detectTemplate(backend: ChatBackend): Promise<void> {
    if (this.forcedOpen.has(backend.model)) return;
    const opens = await backend.detectForcedOpen();
    if (opens !== undefined) this.forcedOpen.set(backend.model, opens);
  }

  // ---- answering -------------------------------------------------------------------------------------------------

  private async answer(text: string): Promise<TurnResult> {
    const backend = this.backend!;
    this.conv.addUser(text);
    const turn = this.renderer.startTurn(backend.model);
    const ac = new AbortController();
    this.current = ac;
    let error: string | undefined;
    try {
      const events = backend.client.stream(
        {
          model: backend.model,
          messages: this.conv.requestMessages(),
          ...(this.o.maxTokens !== undefined ? { maxTokens: this.o.maxTokens } : {}),
          ...(this.o.temperature !== undefined ? { temperature: this.o.temperature } : {}),
          ...(this.o.params ? { extra: this.o.params } : {}),
          forcedOpen: this.forcedOpen.get(backend.model) === true,
        },
        ac.signal,
      );
      for await (const ev of events) {
        turn.event(ev);
        if (ev.type === "error") error ??= ev.message;
      }
    } catch (e) {
      error = e instanceof ChatHttpError ? e.message : errorMessage(e);
    } finally {
      this.current = undefined;
    }
    const cancelled = ac.signal.aborted;
    const res = turn.end({ cancelled, ...(error && !cancelled ? { error } : {}) });
    // The proxy loads a model on its first message: now its template can be checked.
    if (this.interactive && !this.forcedOpen.has(backend.model) && !cancelled)
      await this.detectTemplate(backend).catch(() => undefined);
    if (res.answer === "" && (res.cancelled || res.error)) this.conv.dropLastUser();
    else {
      this.conv.addAssistant({
        content: res.answer,
        ...(res.thinking ? { thinking: res.thinking } : {}),
        model: res.model,
        ...(res.finishReason ? { finishReason: res.finishReason } : {}),
        ...(res.cancelled ? { cancelled: true } : {}),
        stats: res.stats,
      });
    }
    return res;
  }

  private async oneShot(question: string): Promise<number> {
    const res = await this.answer(question);
    if (this.signalled || res.cancelled) return EXIT_INTERRUPTED;
    if (res.error) {
      this.stderr.write(`gglib chat: ${res.error}\n`);
      return EXIT_FAILED;
    }
    if (res.answer === "" && !this.o.json && !this.o.quiet) {
      const why =
        res.thinking !== ""
          ? `the model spent ${res.stats.generatedTokens ?? "all its"} tokens thinking and gave no answer${res.finishReason === "length" ? " (length limit reached: raise --max-tokens or the context size)" : ""}`
          : "the model gave an empty answer";
      this.stderr.write(
        `gglib chat: ${why}.${this.o.think !== "show" && res.thinking ? " Add --think show to see the thinking on stderr." : ""}\n`,
      );
    }
    return EXIT_OK;
  }

  // ---- interactive -----------------------------------------------------------------------------------------------

  private async repl(): Promise<number> {
    const backend = this.backend!;
    this.stdout.write(
      this.c.dim(
        `Chatting with ${this.c.bold(backend.model || "the server's model")}. /help for commands, Ctrl-D or /exit to leave.`,
      ) + "\n",
    );
    const reader = new PromptReader({
      input: this.stdin,
      output: this.stdout,
      historyFile: this.o.historyFile ?? join(dataDir(this.env), "chat_history"),
      prompt: this.c.bold(">>> "),
      continuationPrompt: this.c.dim("... "),
    });
    this.reader = reader;
    try {
      for (;;) {
        const r = await reader.read();
        if (r.kind === "exit" || this.signalled) break;
        const cmd = parseSlashCommand(r.text);
        if (cmd) {
          if (cmd.name === "exit") break;
          await this.command(cmd);
          continue;
        }
        let eof = false;
        reader.setBusy(true);
        reader.onInterrupt = () => this.current?.abort();
        reader.onEof = () => {
          eof = true;
          this.current?.abort();
        };
        try {
          await this.answer(unescapeMessage(r.text));
        } finally {
          reader.setBusy(false);
          reader.onInterrupt = undefined;
          reader.onEof = undefined;
        }
        reader.saveHistory();
        if (eof || reader.isClosed) break;
      }
    } finally {
      reader.close();
      this.reader = undefined;
    }
    return this.signalled ? EXIT_INTERRUPTED : EXIT_OK;
  }

  private async command(cmd: SlashCommand): Promise<void> {
    const out = (s: string) => this.stdout.write(s + "\n");
    const backend = this.backend!;
    try {
      switch (cmd.name) {
        case "help":
          out(HELP_TEXT);
          return;
        case "clear":
          this.conv.clear();
          out(this.c.dim("Conversation cleared."));
          return;
        case "model": {
          if (!cmd.model) {
            out(`Model: ${this.c.bold(backend.model || "(the server's)")}, via ${backend.describe()}`);
            return;
          }
          if (backend.kind === "runner") {
            // Fail on an unknown name before announcing a start.
            resolveModelArg(cmd.model, { env: this.env, ...(this.o.modelsDir ? { modelsDir: this.o.modelsDir } : {}) });
            if (!(await this.loadModel(backend, cmd.model, `Starting ${cmd.model}…`))) return;
            out(
              this.c.dim(
                `Now chatting with ${backend.model} (${backend.describe()}); the previous server was stopped.`,
              ),
            );
          } else {
            await backend.setModel(cmd.model);
            out(this.c.dim(`Now chatting with ${backend.model}.`));
          }
          this.conv.model = backend.model;
          await this.detectTemplate(backend);
          return;
        }
        case "system":
          if (cmd.text === undefined)
            out(this.conv.system ? `System prompt: ${this.conv.system}` : "No system prompt.");
          else if (cmd.text === "-") {
            this.conv.system = undefined;
            out(this.c.dim("System prompt removed."));
          } else {
            this.conv.system = cmd.text;
            out(this.c.dim("System prompt set."));
          }
          return;
        case "think":
          if (cmd.mode) {
            this.renderer.thinkMode = cmd.mode;
            out(
              this.c.dim(
                cmd.mode === "show"
                  ? "Thinking will be shown as it streams."
                  : "Thinking will be hidden (only its duration is shown).",
              ),
            );
          } else out(`Thinking: ${this.renderer.thinkMode}`);
          return;
        case "save": {
          const n = this.conv.history.length;
          const { path, format } = await saveConversation(this.conv, cmd.file);
          out(this.c.dim(`Saved ${n} message${n === 1 ? "" : "s"} to ${path} (${format}).`));
          return;
        }
        case "invalid":
          out(this.c.yellow(cmd.message));
          return;
        case "exit":
          return;
      }
    } catch (e) {
      this.fail(e);
    }
  }

  private async shutdown(): Promise<void> {
    const b = this.backend;
    this.backend = undefined;
    if (!b) return;
    try {
      if (b.kind === "runner" && this.interactive) this.info(`Stopping ${b.model}…`);
      await b.close();
    } catch (e) {
      this.stderr.write(this.ce.red(`gglib chat: could not stop the server: ${errorMessage(e)}`) + "\n");
    }
  }
}

async function readAll(stream: NodeJS.ReadStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks).toString("utf8");
}
