/**
 * The calls a translated request (Relay.relayTranslated: Ollama's API) makes to llama-server on its lease: each a
 * JSON POST on the process's pool, whose answer the route reads (streamed or whole). All of them are cut when the
 * client goes away or the model is stopped by force (the controller tracks them as one open forward), follow
 * Forward's resend rule (`mayResendRequest`), and count as the process's progress for the hang rule.
 */
import type { ServerResponse } from "node:http";
import type { Dispatcher } from "undici";
import { HttpError } from "../core/errors.js";
import { errorOfText } from "../core/upstream-error.js";
import type { Abortable, Lease, ModelController } from "./controller.js";
import { freshConnection, mayResendRequest } from "./forward.js";

export interface UpstreamAnswer {
  status: number;
  body: Dispatcher.ResponseData["body"];
}

export class LeaseUpstream implements Abortable {
  private readonly cut = new AbortController();
  /** When the first answer began (performance.now()): the request's time to first byte. */
  firstAnswerAt: number | undefined;

  constructor(
    private readonly controller: ModelController,
    private readonly lease: Lease,
    private readonly res: ServerResponse,
    private readonly pool: Dispatcher,
  ) {
    res.on("close", this.onClientClose);
    controller.trackUpstream(lease, this);
  }

  abort(reason: Error): void {
    this.cut.abort(reason);
  }

  /** Bytes of an answer arrived: the process makes progress (the hang rule). */
  received(bytes: number): void {
    this.lease.received(bytes);
  }

  /** POSTs `body` as JSON to `path`; the answer's status and body. Rejects with HttpError (499, 502). */
  async call(path: string, body: unknown): Promise<UpstreamAnswer> {
    const opts: Dispatcher.RequestOptions = {
      origin: this.lease.handle.url,
      path,
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
      signal: this.cut.signal,
      headersTimeout: 0,
      bodyTimeout: 0,
    };
    let r: Dispatcher.ResponseData;
    try {
      try {
        r = await this.pool.request(opts);
      } catch (e) {
        const serving = () => this.controller.isServing(this.lease.model, this.lease.instance);
        const state = { resent: false, aborted: this.cut.signal.aborted, answered: false };
        if (!mayResendRequest(e as Error, state, serving)) throw e;
        const client = freshConnection(this.lease.handle.url);
        const again = client.request(opts);
        void client.close().catch(() => {}); // once this one request is over
        r = await again;
      }
    } catch (e) {
      throw await this.failure(e as Error);
    }
    this.firstAnswerAt ??= performance.now();
    this.lease.received(1);
    return { status: r.statusCode, body: r.body };
  }

  /** A short call (apply-template, tokenize) → its JSON object; an error answer is that HttpError. */
  async json(path: string, body: unknown): Promise<Record<string, unknown>> {
    const r = await this.call(path, body);
    const text = await r.body.text();
    if (r.status >= 400) throw new HttpError(r.status, "upstream_error", errorOfText(text).message);
    try {
      return JSON.parse(text) as Record<string, unknown>;
    } catch {
      throw new HttpError(502, "upstream_failed", `llama-server answered ${path} with text that is not JSON`);
    }
  }

  /** What a failed call or a body cut midway is to the client: 499 when it left, else a 502 that says why. */
  async failure(e: Error): Promise<HttpError> {
    if (e instanceof HttpError) return e;
    if (this.res.destroyed) return new HttpError(499, "client_closed", "the client went away");
    const why = await this.controller.explainFailure(this.lease.model, this.lease.instance, e);
    return new HttpError(502, "upstream_failed", `the request to llama-server failed: ${why}`);
  }

  /** The request is over: no longer cut by a forced stop or the client's leaving. */
  close(): void {
    this.res.off("close", this.onClientClose);
    this.controller.untrackUpstream(this.lease, this);
  }

  private readonly onClientClose = (): void => {
    if (!this.res.writableFinished) this.cut.abort(new Error("client closed the connection"));
  };
}
