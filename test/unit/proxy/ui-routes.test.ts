// The static shell at /ui: files from the built folder only, strict CSP, redirects, ETags, and clear errors.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { safeHandler } from "../../../src/proxy/http/errors.js";
import { RouteTable } from "../../../src/proxy/routes/table.js";
import type { ProxyContext } from "../../../src/proxy/routes/types.js";
import { defaultUiDir, UI_CSP, uiRoutes } from "../../../src/proxy/routes/ui.js";
import { BUILD_STEPS } from "../../../scripts/build.js";

async function serve(t: import("node:test").TestContext, dir: string) {
  // the module's routes in a table of their own (they read nothing of the proxy's context)
  const routes = uiRoutes(dir).routes({} as ProxyContext);
  assert.ok(
    routes.every((r) => r.open === true),
    "open without an API key",
  );
  const table = new RouteTable(routes);
  const server = createServer(
    safeHandler(
      async (req, res) => {
        const path = (req.url ?? "/").split("?")[0]!;
        const route = table.match(req.method ?? "GET", path);
        if (route) await route.handle(req, res, path, undefined);
        else {
          res.writeHead(418);
          res.end();
        }
      },
      () => {},
    ),
  );
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

test("serves the built files with the CSP; /ui redirects; unknown and traversing paths are 404", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "gglib-ui-unit-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, "index.html"), "<!doctype html><title>x</title>");
  writeFileSync(join(dir, "app.js"), "console.log(1)");
  writeFileSync(join(dir, "notes.txt"), "not served");
  const url = await serve(t, dir);

  const index = await fetch(`${url}/ui/`);
  assert.equal(index.status, 200);
  assert.equal(index.headers.get("content-type"), "text/html; charset=utf-8");
  assert.equal(index.headers.get("content-security-policy"), UI_CSP);
  assert.match(UI_CSP, /default-src 'none'; script-src 'self'; style-src 'self'/);
  assert.equal(index.headers.get("x-content-type-options"), "nosniff");
  assert.equal(await index.text(), "<!doctype html><title>x</title>");

  const js = await fetch(`${url}/ui/app.js`);
  assert.equal(js.headers.get("content-type"), "text/javascript; charset=utf-8");
  const etag = js.headers.get("etag")!;
  assert.equal((await fetch(`${url}/ui/app.js`, { headers: { "if-none-match": etag } })).status, 304);

  const redirect = await fetch(`${url}/ui`, { redirect: "manual" });
  assert.equal(redirect.status, 308);
  assert.equal(redirect.headers.get("location"), "/ui/");

  for (const p of ["/ui/notes.txt", "/ui/missing.js", "/ui/..%2fpackage.json", "/ui/%2e%2e%2fx.js", "/ui/a/app.js"]) {
    const r = await fetch(`${url}${p}`);
    assert.equal(r.status, 404, p);
    assert.equal(((await r.json()) as { error: { code: string } }).error.code, "not_found");
  }
  assert.equal((await fetch(`${url}/other`)).status, 418, "other paths are not ours");
  const post = await fetch(`${url}/ui/`, { method: "POST", body: "x" });
  assert.equal(post.status, 405);
});

test("not built: 503 that says how to build it", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "gglib-ui-unit-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const url = await serve(t, dir);
  const r = await fetch(`${url}/ui/`);
  assert.equal(r.status, 503);
  assert.match(((await r.json()) as { error: { message: string } }).error.message, /npm run build/);
});

test("the proxy serves dist/ui of this package, and the package ships it", () => {
  const root = join(fileURLToPath(new URL(".", import.meta.url)), "../../..");
  assert.equal(defaultUiDir(), join(root, "dist", "ui"));
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
    files: string[];
    scripts: Record<string, string>;
  };
  assert.ok(pkg.files.includes("dist/ui"));
  assert.match(pkg.scripts.build!, /scripts\/build\.ts/);
});

test("the build's dashboard step writes the files /ui serves", async (t) => {
  const dist = mkdtempSync(join(tmpdir(), "gglib-ui-build-"));
  t.after(() => rmSync(dist, { recursive: true, force: true }));
  const step = BUILD_STEPS.find((s) => s.produces === "ui/index.html");
  assert.ok(step, "a build step writes the dashboard");
  await step.run(dist);
  const url = await serve(t, join(dist, "ui"));
  const r = await fetch(`${url}/ui/`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get("content-type") ?? "", /text\/html/);
  assert.match(await r.text(), /app\.js/);
  assert.equal((await fetch(`${url}/ui/app.js`)).status, 200);
});
