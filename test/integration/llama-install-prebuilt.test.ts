/**
 * Prebuilt install against a local HTTP server that plays GitHub's llama.cpp releases (fixture JSON + archives
 * built here): asset choice, download with progress, digest/size checks, extraction layouts, atomic swap,
 * offline and error messages, update.
 */
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { existsSync, lstatSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer } from "node:net";
import { installLlama, type InstallReporter } from "../../src/llama/install/install.js";
import { llamaStatus } from "../../src/llama/install/status.js";
import { uninstallLlama } from "../../src/llama/install/uninstall.js";
import { updateLlama } from "../../src/llama/install/update.js";
import { isGglibError } from "../../src/core/errors.js";
import {
  assetName,
  fakeServerScript,
  hostCpuAssetSuffix,
  makeReleaseArchive,
  startFakeReleaseServer,
  FIXTURE_TAG,
} from "../support/fake-release-server.js";

const supported =
  (process.platform === "linux" || process.platform === "darwin") &&
  (process.arch === "x64" || process.arch === "arm64");

function setup(t: { after: (fn: () => void | Promise<void>) => void }) {
  const root = mkdtempSync(join(tmpdir(), "gglib-prebuilt-"));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const env: NodeJS.ProcessEnv & { GGLIB_DATA_DIR: string; GGLIB_CACHE_DIR: string } = {
    ...process.env,
    GGLIB_DATA_DIR: join(root, "data"),
    GGLIB_CACHE_DIR: join(root, "cache"),
  };
  delete env.GGLIB_LLAMA_SERVER;
  return { root, env };
}

function recorder(): { rep: InstallReporter; steps: string[]; fractions: number[] } {
  const steps: string[] = [];
  const fractions: number[] = [];
  return { rep: { step: (m) => steps.push(m), progress: (f) => fractions.push(f) }, steps, fractions };
}

async function freePortClosed(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe("llama install (prebuilt)", { skip: !supported && "no llama.cpp prebuilt naming for this platform" }, () => {
  test("downloads the asset for this OS/arch, extracts llama-bNNNN/, keeps library symlinks, writes the record", async (t) => {
    const { root, env } = setup(t);
    const archive = makeReleaseArchive(root, "tar.gz", {
      "llama-server": fakeServerScript(),
      "libggml-base.so.0.9.0": "ELF-ish",
      "libggml-base.so": { link: "libggml-base.so.0.9.0" },
      LICENSE: "MIT",
    });
    const srv = await startFakeReleaseServer({ [assetName(hostCpuAssetSuffix())]: { body: archive } });
    t.after(() => srv.close());
    env.GGLIB_LLAMA_RELEASES_URL = srv.releasesUrl;
    const { rep, steps, fractions } = recorder();

    const r = await installLlama({ env, backend: "cpu", reporter: rep });
    assert.equal(r.changed, true);
    const bin = join(env.GGLIB_DATA_DIR, "llama", "bin", "llama-server");
    assert.equal(r.record.binaryPath, bin);
    assert.equal(r.record.installType, "prebuilt");
    assert.equal(r.record.tag, FIXTURE_TAG);
    assert.equal(r.record.asset, assetName(hostCpuAssetSuffix()));
    assert.equal(r.record.commit, "1234abc");
    assert.equal(r.record.version, "0.0.9-fake (build 9999, commit 1234abc)");
    assert.equal(r.record.backend, "cpu");
    assert.deepEqual(
      JSON.parse(readFileSync(join(env.GGLIB_DATA_DIR, "llama", "install.json"), "utf8")),
      JSON.parse(JSON.stringify(r.record)),
    );
    assert.ok(lstatSync(join(env.GGLIB_DATA_DIR, "llama", "bin", "libggml-base.so")).isSymbolicLink());
    assert.equal(readlinkSync(join(env.GGLIB_DATA_DIR, "llama", "bin", "libggml-base.so")), "libggml-base.so.0.9.0");
    assert.ok(
      steps.some((s) => s.startsWith("Downloading llama-")),
      steps.join("|"),
    );
    assert.equal(fractions.at(-1), 1, "download progress reaches 100%");
    assert.ok(srv.requests.includes("/repos/ggml-org/llama.cpp/releases/latest"));
    assert.deepEqual(
      readdirSync(join(env.GGLIB_CACHE_DIR, "llama-downloads")),
      [],
      "the archive is removed after install",
    );
    assert.equal(
      readdirSync(join(env.GGLIB_DATA_DIR)).filter(
        (f) => f.includes("staging") || f.includes(".old-") || f.endsWith(".lock"),
      ).length,
      0,
    );

    const st = await llamaStatus(env);
    assert.equal(st.installed, true);
    assert.equal(st.healthy, true);
    assert.match(st.versionText ?? "", /0\.0\.9-fake/);

    // installed + no --force: nothing is downloaded again
    const before = srv.requests.length;
    const again = await installLlama({ env, backend: "cpu" });
    assert.equal(again.changed, false);
    assert.equal(srv.requests.length, before);
  });

  test("a zip with the old build/bin/ layout, chosen by tag", async (t) => {
    const { root, env } = setup(t);
    const name = assetName(hostCpuAssetSuffix().replace(".tar.gz", ".zip"), "b1234");
    const archive = makeReleaseArchive(
      root,
      "zip",
      {
        "build/bin/llama-server": fakeServerScript("0.0.1 (build 1234, commit feed123)"),
        "build/bin/llama-cli": fakeServerScript(),
      },
      "",
    );
    const srv = await startFakeReleaseServer({ [name]: { body: archive } }, "b1234");
    t.after(() => srv.close());
    srv.state.onlyServed = true;
    env.GGLIB_LLAMA_RELEASES_URL = srv.releasesUrl;
    const r = await installLlama({ env, backend: "cpu", version: "b1234" });
    assert.equal(r.record.tag, "b1234");
    assert.equal(r.record.commit, "feed123");
    assert.ok(srv.requests.includes("/repos/ggml-org/llama.cpp/releases/tags/b1234"));
  });

  test("zip extraction (unzip) finds llama-server in build/bin/", async (t) => {
    const { root } = setup(t);
    const { extractArchive, findBinaryDir } = await import("../../src/llama/install/prebuilt.js");
    const { writeFileSync } = await import("node:fs");
    const zip = join(root, "a.zip");
    writeFileSync(
      zip,
      makeReleaseArchive(root, "zip", { "build/bin/llama-server": fakeServerScript(), "build/bin/ggml.dll": "x" }, ""),
    );
    await extractArchive(zip, join(root, "out"));
    assert.equal(findBinaryDir(join(root, "out")), join(root, "out", "build", "bin"));
  });

  test("a wrong sha256 digest or a cut download fails, leaves no partial file and keeps the installed version", async (t) => {
    const { root, env } = setup(t);
    const good = makeReleaseArchive(root, "tar.gz", {
      "llama-server": fakeServerScript("1.0 (build 1, commit aaaaaaa)"),
    });
    const srv = await startFakeReleaseServer({ [assetName(hostCpuAssetSuffix())]: { body: good } });
    t.after(() => srv.close());
    env.GGLIB_LLAMA_RELEASES_URL = srv.releasesUrl;
    await installLlama({ env, backend: "cpu" });

    const newer = makeReleaseArchive(root, "tar.gz", {
      "llama-server": fakeServerScript("2.0 (build 2, commit bbbbbbb)"),
    });
    srv.state.assets.set(assetName(hostCpuAssetSuffix()), { body: newer, digest: "wrong" });
    await assert.rejects(
      installLlama({ env, backend: "cpu", force: true }),
      (e) => isGglibError(e, "build_failed") && /sha256/.test(e.message),
    );
    srv.state.assets.set(assetName(hostCpuAssetSuffix()), { body: newer, truncateAt: 100 });
    await assert.rejects(
      installLlama({ env, backend: "cpu", force: true }),
      (e) => isGglibError(e, "build_failed") && /interrupted|expected/.test(e.message),
    );
    assert.deepEqual(readdirSync(join(env.GGLIB_CACHE_DIR, "llama-downloads")), []);
    const st = await llamaStatus(env);
    assert.equal(st.healthy, true);
    assert.match(st.versionText ?? "", /version: 1\.0/, "the previous install still works");
  });

  test("a binary that fails --version is not installed over a working one", async (t) => {
    const { root, env } = setup(t);
    const srv = await startFakeReleaseServer({
      [assetName(hostCpuAssetSuffix())]: {
        body: makeReleaseArchive(root, "tar.gz", { "llama-server": fakeServerScript("1.0 (build 1, commit aaaaaaa)") }),
      },
    });
    t.after(() => srv.close());
    env.GGLIB_LLAMA_RELEASES_URL = srv.releasesUrl;
    await installLlama({ env, backend: "cpu" });
    srv.state.assets.set(assetName(hostCpuAssetSuffix()), {
      body: makeReleaseArchive(root, "tar.gz", { "llama-server": fakeServerScript("broken", 127) }),
    });
    await assert.rejects(
      installLlama({ env, backend: "cpu", force: true }),
      (e) => isGglibError(e, "build_failed") && /fails `--version`/.test(e.message),
    );
    assert.equal((await llamaStatus(env)).record?.commit, "aaaaaaa");
  });

  test("offline: a clear error that suggests --source", async (t) => {
    const { env } = setup(t);
    env.GGLIB_LLAMA_RELEASES_URL = `http://127.0.0.1:${await freePortClosed()}/repos/ggml-org/llama.cpp/releases`;
    await assert.rejects(installLlama({ env, backend: "cpu" }), (e) => {
      assert.ok(isGglibError(e, "build_failed"));
      assert.match(e.message, /Could not reach llama\.cpp's releases .*ECONNREFUSED.*offline/);
      assert.match(e.details.hint ?? "", /gglib llama install --source/);
      return true;
    });
    assert.equal(existsSync(join(env.GGLIB_DATA_DIR, "llama")), false);
  });

  test("unknown tag, no asset for the backend, rate limit: each says what to do", async (t) => {
    const { env } = setup(t);
    const srv = await startFakeReleaseServer({});
    t.after(() => srv.close());
    env.GGLIB_LLAMA_RELEASES_URL = srv.releasesUrl;
    await assert.rejects(
      installLlama({ env, backend: "cpu", version: "b1" }),
      (e) => isGglibError(e) && /no release tagged "b1"/.test(e.message),
    );
    await assert.rejects(installLlama({ env, backend: "cuda" }), (e) => {
      assert.ok(isGglibError(e));
      if (process.platform === "linux") {
        assert.match(e.message, /no prebuilt binary for linux-\w+ with the cuda backend/);
        assert.match(e.details.hint ?? "", /--source/);
        assert.match(e.details.hint ?? "", /--backend cpu/);
        if (process.arch === "x64")
          assert.match(e.details.hint ?? "", /--backend vulkan/, "the Vulkan prebuilt is offered for NVIDIA GPUs");
      }
      return true;
    });
    srv.state.status = 403;
    await assert.rejects(
      installLlama({ env, backend: "cpu" }),
      (e) => isGglibError(e) && /403/.test(e.message) && /rate limit/.test(e.details.hint ?? ""),
    );
  });

  test("update: nothing when the tag is the same, the new release when it is not; uninstall removes it", async (t) => {
    const { root, env } = setup(t);
    const srv = await startFakeReleaseServer({
      [assetName(hostCpuAssetSuffix())]: {
        body: makeReleaseArchive(root, "tar.gz", { "llama-server": fakeServerScript("1.0 (build 1, commit aaaaaaa)") }),
      },
    });
    t.after(() => srv.close());
    env.GGLIB_LLAMA_RELEASES_URL = srv.releasesUrl;
    await installLlama({ env, backend: "cpu" });
    const same = await updateLlama({ env });
    assert.equal(same.changed, false);

    srv.state.tag = "b10000";
    srv.state.assets = new Map([
      [
        assetName(hostCpuAssetSuffix(), "b10000"),
        {
          body: makeReleaseArchive(
            root,
            "tar.gz",
            { "llama-server": fakeServerScript("2.0 (build 2, commit bbbbbbb)") },
            "llama-b10000",
          ),
        },
      ],
    ]);
    const upd = await updateLlama({ env });
    assert.equal(upd.changed, true);
    assert.equal(upd.record.tag, "b10000");
    assert.equal(upd.record.commit, "bbbbbbb");

    const un = await uninstallLlama({ env, purge: true });
    assert.equal(un.removed, true);
    const st = await llamaStatus(env);
    assert.equal(st.installed, false);
    assert.match(st.problem ?? "", /not installed/);
    await assert.rejects(
      updateLlama({ env }),
      (e) => isGglibError(e, "binary_not_found") && /gglib llama install/.test(e.details.hint ?? ""),
    );
  });
});
