/**
 * The words for the scheduler's rejections: it refuses a request with a code and its data
 * (scheduler.ts `Rejection`); this is where that becomes the message a client reads.
 */
import { HttpError } from "../../core/errors.js";
import type { RejectAction, Rejection } from "../scheduler.js";

export function rejectionMessage(model: string, r: Rejection): string {
  switch (r.code) {
    case "model_not_found":
      return r.removed ? `Model '${model}' was removed from the configuration.` : `Model '${model}' is not known.`;
    case "shutting_down":
      return "The proxy is shutting down.";
    case "queue_full":
      return `Too many requests are waiting for model '${model}' (${r.queued}). Retry shortly.`;
    case "queue_timeout":
      return `Model '${model}' was not ready within ${r.timeoutS} s${r.waitingForRoom ? " (waiting for other models to finish their requests)" : ""}. Retry later.`;
    case "model_load_failed":
      return r.failures === undefined
        ? `Model '${model}' failed to load: ${r.reason}`
        : `Model '${model}' failed to load ${r.failures} time(s); retrying after a cooldown. Last error: ${r.reason}`;
    case "model_unloaded":
      return `Model '${model}' was unloaded by request.`;
    case "model_busy":
      return `Model '${model}' needs the room of '${r.victim}', which still had requests running after ${r.drainS} s. Retry later.`;
    case "model_stop_failed":
      return `Model '${model}' could not be stopped, so its memory stays reserved and it takes no requests: ${r.reason}`;
  }
}

export function rejectionError(a: RejectAction): HttpError {
  return new HttpError(a.status, a.code, rejectionMessage(a.model, a), a.retryAfterS);
}
