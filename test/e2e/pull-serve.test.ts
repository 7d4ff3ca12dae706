// `gglib pull` as a user runs it, against the local fake hub: a pull interrupted mid-file (Ctrl-C while the
// connection hangs) resumes in the next run with a Range request and verifies; then `gglib proxy` on the REAL
// llama-server serves the pulled model and answers a chat, by its name and by the `<user>/<repo>:<quant>` alias.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { encodeGguf } from "../support/gguf-writer.js";
import { partPaths } from "../../src/hub/download.js";
import { startFakeHub } from "../support/fake-hub.js";
import { ensureLlamaServer } from "../support/llama-server.js";
import { GGLIB_BIN, postJson, proxyDir, startProxyProcess } from "../support/proxy-harness.js";
import { waitFor } from "../support/procs.js";
import { tinyModelDocument } from "../support/tiny-models.js";

const REPO = "test-user/tiny-pull-GGUF";
const FILE = "tiny-pull-F16.gguf";

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function gglib(
  args: string[],
  env: NodeJS.ProcessEnv,
  until?: (out: { stdout: string; stderr: string }) => boolean,
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [GGLIB_BIN, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let signalled = false;
    const check = () => {
      if (!signalled && until?.({ stdout, stderr })) {
        signalled = true;
        child.kill("SIGINT");
      }
    };
    child.stdout.setEncoding("utf8").on("data", (d: string) => ((stdout += d), check()));
    child.stderr.setEncoding("utf8").on("data", (d: string) => ((stderr += d), check()));
    const timer = setInterval(check, 50);
    const kill = setTimeout(() => child.kill("SIGKILL"), 60_000);
    child.once("error", reject);
    child.once("exit", (code) => {
      clearInterval(timer);
      clearTimeout(kill);
      resolve({ code, stdout, stderr });
    });
  });
}

describe("gglib pull → gglib proxy on the real llama-server", { timeout: 240_000 }, () => {
  test("an interrupted pull resumes, verifies, registers; the proxy serves it and answers a chat", async (t) => {
    const bin = await ensureLlamaServer();
    const tiny = await encodeGguf(tinyModelDocument({ name: "tiny-pull", kind: "chat" }));
    const hub = await startFakeHub({ repos: [{ id: REPO, files: [{ path: FILE, content: tiny }] }] });
    t.after(() => hub.close());
    const dir = proxyDir(t, []);
    const models = join(dir, "models");
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      HF_ENDPOINT: hub.url,
      GGLIB_DATA_DIR: join(dir, "data"),
      NO_COLOR: "1",
    };
    delete env.HF_TOKEN;
    delete env.FORCE_COLOR;
    const dest = join(models, "test-user", "tiny-pull-GGUF", "tiny-pull-F16", "tiny-pull-F16.gguf");

    // run 1: the file server hangs after 60 000 bytes; the user presses Ctrl-C
    hub.faults = { stall: { path: FILE, afterBytes: 60_000, times: 1 } };
    const first = await gglib(["pull", REPO, "--models-dir", models, "--json"], env, () => hub.stalled.includes(FILE));
    assert.equal(first.code, 130, `exit code; stderr:\n${first.stderr}`);
    const events = first.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { event: string; phase?: string; status?: string; kind?: string });
    assert.equal(events[0]!.status, "pulling manifest");
    assert.ok(events.some((e) => e.phase === "download"));
    assert.equal(events.at(-1)!.event, "error");
    assert.equal(statSync(partPaths(dest).part).size, 60_000, "the bytes received before the stop are kept");
    assert.equal(existsSync(dest), false);

    // run 2: resumes from byte 60 000, verifies, registers
    hub.faults = {};
    hub.requests.length = 0;
    const second = await gglib(["pull", REPO, "--models-dir", models], env);
    assert.equal(second.code, 0, second.stderr);
    assert.deepEqual(
      hub.requests.filter((q) => q.server === "files").map((q) => q.range),
      ["bytes=60000-"],
    );
    assert.equal(
      createHash("sha256").update(readFileSync(dest)).digest("hex"),
      createHash("sha256").update(tiny).digest("hex"),
    );
    assert.match(second.stderr, /tiny-pull-F16\.gguf verified/);
    assert.match(
      second.stdout,
      /registered as tiny-pull-F16 \(also test-user\/tiny-pull-GGUF:F16, test-user\/tiny-pull-GGUF\)/,
    );
    assert.ok(!(second.stdout + second.stderr).includes("\u001b["), "NO_COLOR and a pipe: no escape codes");

    // the proxy (registry + models folder, the same file: listed once) on the real llama-server
    const proxy = await startProxyProcess(t, { dir, binary: bin, readyTimeoutMs: 60_000 });
    const list = (await (await fetch(`${proxy.url}/v1/models`)).json()) as { data: { id: string }[] };
    assert.deepEqual(
      list.data.map((m) => m.id).filter((id) => id.startsWith("tiny-pull")),
      ["tiny-pull-F16"],
    );
    for (const model of ["tiny-pull-F16", `${REPO}:F16`]) {
      const res = await postJson(proxy.url, "/v1/chat/completions", {
        model,
        messages: [{ role: "user", content: "Hello" }],
        max_tokens: 8,
        temperature: 0,
      });
      const body = (await res.json()) as { model?: string; choices?: { message: { content: string } }[] };
      assert.equal(res.status, 200, JSON.stringify(body));
      assert.ok((body.choices?.[0]?.message.content ?? "").length > 0, `an answer for ${model}`);
    }
    assert.ok(await waitFor(() => proxy.llamaPids().length === 1, 5_000), "one llama-server for both names");
  });
});
