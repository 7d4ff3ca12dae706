/**
 * API keys: accepted as `Authorization: Bearer <key>` or `x-api-key: <key>`, compared in constant time. No keys
 * configured means every request is allowed.
 */
import type { IncomingMessage } from "node:http";
import { timingSafeEqual } from "node:crypto";
import { HttpError } from "../../core/errors.js";

export type AuthCheck = (req: IncomingMessage) => boolean;

const BEARER = /^bearer\s+/i;

export function apiKeyAuth(keys: readonly string[]): AuthCheck {
  if (keys.length === 0) return () => true;
  const accepted = keys.map((k) => Buffer.from(k));
  return (req) => {
    const given = presentedKey(req);
    if (!given) return false;
    const g = Buffer.from(given);
    return accepted.some((k) => k.length === g.length && timingSafeEqual(k, g));
  };
}

/** The key a request presents, if any. */
function presentedKey(req: IncomingMessage): string | undefined {
  const auth = req.headers.authorization;
  if (typeof auth === "string" && BEARER.test(auth)) return auth.replace(BEARER, "").trim();
  const x = req.headers["x-api-key"];
  return typeof x === "string" ? x.trim() : undefined;
}

export function unauthorized(): HttpError {
  return new HttpError(
    401,
    "invalid_api_key",
    "Missing or invalid API key. Send it as 'Authorization: Bearer <key>' or 'x-api-key: <key>'.",
  );
}
