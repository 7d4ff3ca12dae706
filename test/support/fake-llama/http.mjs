// @ts-check
// HTTP/1.1 on node:net, with llama.cpp's (cpp-httplib's) exact headers
import { log } from "./log.mjs";
import { dispatch } from "./routes.mjs";
import { K } from "./knobs.mjs";
import { S } from "./state.mjs";

/** FAKE_LLAMA_CLOSE_ON_REUSE: how many reused-connection POSTs are still to be met by a close. */
let closesLeft = K.closeOnReuse;

export const REASONS = {
  200: "OK",
  400: "Bad Request",
  401: "Unauthorized",
  404: "Not Found",
  413: "Payload Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  503: "Service Unavailable",
};
export const KEEP_ALIVE = "Keep-Alive: timeout=5, max=100\r\n";
export const MAX_REQUESTS_PER_CONN = 100;

export function allowOrigin(req) {
  return req.headers.origin ?? "";
}
export function connHeader(c, req, status) {
  const close = status >= 400 || req.wantsClose || c.nreq + 1 >= MAX_REQUESTS_PER_CONN || S.state === "shutting-down";
  return { close, line: close ? "Connection: close\r\n" : KEEP_ALIVE };
}
export function sendRaw(c, req, status, contentType, body, extraHeaders = "") {
  if (c.closed) return finish(c, true);
  const buf = typeof body === "string" ? Buffer.from(body) : body;
  const { close, line } = connHeader(c, req, status);
  const head =
    `HTTP/1.1 ${status} ${REASONS[status] ?? "OK"}\r\nServer: llama.cpp\r\nAccess-Control-Allow-Origin: ${allowOrigin(req)}\r\n${extraHeaders}` +
    `Content-Type: ${contentType}\r\nContent-Length: ${buf.length}\r\n${line}${req.method === "HEAD" ? "Accept-Ranges: bytes\r\n" : ""}\r\n`;
  c.sock.write(req.method === "HEAD" ? head : Buffer.concat([Buffer.from(head), buf]));
  finish(c, close);
}
export const JSON_TYPE = "application/json; charset=utf-8";
export const sendJson = (c, req, status, obj) =>
  sendRaw(c, req, status, JSON_TYPE, typeof obj === "string" ? obj : JSON.stringify(obj));
/** Errors thrown by handlers: {"error":{"code","message","type"}} (llama.cpp's usual key order). */
export function errBody(code, message, type, extra) {
  return JSON.stringify({ error: { code, message, type, ...extra } });
}
export function sendError(c, req, code, message, type, extra) {
  const body = errBody(code, message, type, extra);
  if (code === 400 || code === 500) log("W", "srv", "operator()", `got exception: ${body}`);
  sendJson(c, req, code, body);
}
export const LOADING_BODY = '{"error":{"message":"Loading model","type":"unavailable_error","code":503}}';
export const NOT_FOUND_BODY = '{"error":{"message":"File Not Found","type":"not_found_error","code":404}}';
export const BAD_KEY_BODY = '{"error":{"message":"Invalid API Key","type":"authentication_error","code":401}}';
export const PEG_ERROR = {
  code: 500,
  message: "The model produced output that does not match the expected peg-native format",
  type: "server_error",
};

/** Called when a response is complete: keep the connection for the next request, or close it. */
export function finish(c, close) {
  c.busy = false;
  c.nreq++;
  if (close || c.closed) {
    if (!c.closed) c.sock.end();
    return;
  }
  armIdle(c);
  if (c.buf.length > 0) setImmediate(() => pump(c));
}
export function armIdle(c) {
  clearTimeout(c.idleTimer);
  c.idleTimer = setTimeout(() => c.sock.destroy(), 5000);
  c.idleTimer.unref();
}

export function onConnection(sock) {
  sock.setNoDelay(true);
  const c = {
    sock,
    buf: Buffer.alloc(0),
    busy: false,
    closed: false,
    nreq: 0,
    idleTimer: undefined,
    onClose: new Set(),
    continued: false,
  };
  S.conns.add(c);
  armIdle(c);
  sock.on("data", (d) => {
    c.buf = c.buf.length === 0 ? d : Buffer.concat([c.buf, d]);
    if (!c.busy) pump(c);
  });
  sock.on("error", () => {});
  sock.on("close", () => {
    c.closed = true;
    clearTimeout(c.idleTimer);
    S.conns.delete(c);
    for (const f of [...c.onClose]) f();
    c.onClose.clear();
  });
}

export function decodeChunked(buf, start) {
  const parts = [];
  let o = start;
  for (;;) {
    const eol = buf.indexOf("\r\n", o);
    if (eol < 0) return null;
    const size = parseInt(buf.toString("latin1", o, eol).split(";")[0], 16);
    if (!Number.isFinite(size)) return { error: true };
    o = eol + 2;
    if (size === 0) {
      const end = buf.indexOf("\r\n\r\n", o - 2);
      if (end < 0) return null;
      return { body: Buffer.concat(parts), end: end + 4 };
    }
    if (o + size + 2 > buf.length) return null;
    parts.push(buf.subarray(o, o + size));
    o += size + 2;
  }
}

export function pump(c) {
  if (c.busy || c.closed) return;
  const he = c.buf.indexOf("\r\n\r\n");
  if (he < 0) {
    if (c.buf.length > 65536) c.sock.destroy();
    return;
  }
  const head = c.buf.toString("latin1", 0, he).split("\r\n");
  const m = /^([A-Z]+) (\S+) HTTP\/1\.([01])$/.exec(head[0] ?? "");
  if (!m) {
    c.sock.end("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    return;
  }
  const headers = {};
  for (const h of head.slice(1)) {
    const k = h.indexOf(":");
    if (k > 0) headers[h.slice(0, k).trim().toLowerCase()] = h.slice(k + 1).trim();
  }
  if (closesLeft > 0 && c.nreq > 0 && m[1] === "POST") {
    // cpp-httplib's keep-alive wait ended (timeout or max count) just as this request arrived: the socket is
    // closed with the request unread and unanswered
    closesLeft--;
    c.sock.destroy();
    return;
  }
  let body;
  let end;
  if (/chunked/i.test(headers["transfer-encoding"] ?? "")) {
    const r = decodeChunked(c.buf, he + 4);
    if (r === null) return maybeContinue(c, headers);
    if (r.error) return void c.sock.destroy();
    body = r.body;
    end = r.end;
  } else {
    const len = Number(headers["content-length"] ?? 0) || 0;
    if (c.buf.length < he + 4 + len) return maybeContinue(c, headers);
    body = c.buf.subarray(he + 4, he + 4 + len);
    end = he + 4 + len;
  }
  c.buf = c.buf.subarray(end);
  c.continued = false;
  c.busy = true;
  clearTimeout(c.idleTimer);
  const target = m[2];
  const q = target.indexOf("?");
  const req = {
    method: m[1],
    target,
    path: q >= 0 ? target.slice(0, q) : target,
    query: new URLSearchParams(q >= 0 ? target.slice(q + 1) : ""),
    headers,
    body,
    wantsClose: m[3] === "0" ? !/keep-alive/i.test(headers.connection ?? "") : /close/i.test(headers.connection ?? ""),
  };
  try {
    dispatch(c, req);
  } catch (e) {
    sendError(c, req, 500, String(e?.message ?? e), "server_error");
  }
}
export function maybeContinue(c, headers) {
  if (!c.continued && /100-continue/i.test(headers.expect ?? "")) {
    c.continued = true;
    c.sock.write("HTTP/1.1 100 Continue\r\n\r\n");
  }
}

// streaming responses: chunked SSE
export function startStream(c, req) {
  const { close, line } = connHeader(c, req, 200);
  c.streamClose = close;
  c.sock.write(
    `HTTP/1.1 200 OK\r\nServer: llama.cpp\r\nAccess-Control-Allow-Origin: ${allowOrigin(req)}\r\nX-Accel-Buffering: no\r\n` +
      `Content-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n${line}\r\n`,
  );
}
/** Write one HTTP chunk; resolves once the socket can take more. */
export function writeChunk(c, text) {
  if (c.closed) return Promise.resolve();
  const b = Buffer.from(text);
  const ok = c.sock.write(Buffer.concat([Buffer.from(`${b.length.toString(16)}\r\n`), b, Buffer.from("\r\n")]));
  if (ok) return Promise.resolve();
  return new Promise((res) => {
    const done = () => {
      c.onClose.delete(done);
      c.sock.off("drain", done);
      res();
    };
    c.onClose.add(done);
    c.sock.once("drain", done);
  });
}
export function endStream(c) {
  if (c.closed) return finish(c, true);
  c.sock.write("0\r\n\r\n");
  finish(c, c.streamClose);
}
export const sse = (obj) => `data: ${typeof obj === "string" ? obj : JSON.stringify(obj)}\n\n`;
export const sseEvent = (type, obj) => `event: ${type}\ndata: ${JSON.stringify(obj)}\n\n`;
