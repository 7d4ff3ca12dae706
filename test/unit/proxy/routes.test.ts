import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { RouteTable } from "../../../src/proxy/routes/table.js";
import type { Route } from "../../../src/proxy/routes/types.js";

const route = (method: string, path: string, prefix = false): Route => ({ method, path, prefix, handle: () => {} });

describe("route table", () => {
  const routes = [
    route("GET", "/v1/models"),
    route("*", "/health"),
    route("GET", "/api/logs/", true),
    route("*", "/upstream/", true),
    route("*", "", true),
    route("POST", "/api/chat"),
  ];
  const table = new RouteTable(routes);
  const which = (method: string, path: string) => routes.indexOf(table.match(method, path)!);

  test("exact paths by method, then '*'; a method without an exact route falls through to the prefixes", () => {
    assert.equal(which("GET", "/v1/models"), 0);
    assert.equal(which("POST", "/v1/models"), 4, "POST /v1/models is a model request");
    assert.equal(which("DELETE", "/health"), 1);
    assert.equal(which("POST", "/api/chat"), 5);
  });

  test("longer prefixes first, the empty prefix catches everything else (also '*' and absolute-form URLs)", () => {
    assert.equal(which("GET", "/api/logs/a"), 2);
    assert.equal(which("POST", "/api/logs/a"), 4);
    assert.equal(which("PUT", "/upstream/a/props"), 3);
    assert.equal(which("GET", "*"), 4);
    assert.equal(which("POST", "http://evil.example/v1/chat/completions"), 4);
  });

  test("without a catch-all an unknown path has no route", () => {
    assert.equal(new RouteTable([route("GET", "/a")]).match("GET", "/b"), undefined);
  });
});
