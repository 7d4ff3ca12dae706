#!/usr/bin/env node
/**
 * The floor for a Node.js proxy, used as a baseline by bench/nginx.ts: node:http server + one undici Agent, the
 * body forwarded as is, the response streamed back. No routing, parsing, metrics or scheduling.
 *
 *   node bench/min-node-proxy.mjs http://127.0.0.1:UPSTREAM_PORT     prints {"port":N} once listening on 127.0.0.1
 */
import http from "node:http";
import { Agent, request } from "undici";

const upstream = process.argv[2];
const agent = new Agent({ pipelining: 1, keepAliveTimeout: 4000 });
const HOP = new Set(["connection", "keep-alive", "transfer-encoding"]);

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", async () => {
    try {
      const r = await request(upstream + req.url, {
        method: req.method,
        headers: { "content-type": req.headers["content-type"] ?? "application/json" },
        body: chunks.length ? Buffer.concat(chunks) : null,
        dispatcher: agent,
      });
      const headers = {};
      for (const [k, v] of Object.entries(r.headers)) if (!HOP.has(k)) headers[k] = v;
      res.writeHead(r.statusCode, headers);
      for await (const c of r.body) res.write(c);
      res.end();
    } catch (e) {
      if (!res.headersSent) res.writeHead(502);
      res.end(String(e));
    }
  });
});
server.listen(0, "127.0.0.1", () => process.stdout.write(JSON.stringify({ port: server.address().port }) + "\n"));
