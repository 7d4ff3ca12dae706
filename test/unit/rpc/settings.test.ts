// The rpc setting end to end without processes: config → ServerConfig → argv, the catalog's split, the room rules.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fitReport, formatFitReport } from "../../../src/cli/commands/models/fit.js";
import { settingsText } from "../../../src/cli/commands/models/output.js";
import { colors } from "../../../src/term/color.js";
import { GglibError } from "../../../src/core/errors.js";
import { buildServerArgs } from "../../../src/llama/args.js";
import { configModelsOf, loadConfigFile, parseConfig } from "../../../src/models/config-file.js";
import { parseLlamaMemoryLog } from "../../../src/models/estimator.js";
import { parseSettingAssignment } from "../../../src/models/settings-assign.js";
import { resolveRpcGroups, serverConfigOf } from "../../../src/models/settings.js";
import { failureReason, ggmlAbortMessage } from "../../../src/process/llama-log.js";
import { buildCatalog } from "../../../src/proxy/catalog.js";
import { fits, planRoom, type Occupant } from "../../../src/proxy/eviction.js";
import { RpcChecker } from "../../../src/proxy/rpc.js";
import { Scheduler } from "../../../src/proxy/scheduler.js";
import { writeTinyModel } from "../../support/tiny-models.js";

const GB = 1024 ** 3;
const MiB = 1024 ** 2;

let dir: string;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), "gglib-rpc-settings-"));
  await writeTinyModel(dir, { name: "tiny-deep", kind: "chat", layers: 4 });
});
after(() => rmSync(dir, { recursive: true, force: true }));

void describe("rpc settings", () => {
  test("a list or a group name; the group resolves to its workers", () => {
    const c = parseConfig(
      `rpcGroups:\n  lab: [10.0.0.2:50052, "10.0.0.3:50052"]\nmodels:\n  a: { path: a.gguf, rpc: lab }\n  b: { path: b.gguf, rpc: [gpu-box:50052] }\n  c: { path: c.gguf }\n`,
      "/etc/gglib/c.yaml",
    );
    const models = Object.fromEntries(configModelsOf(c).map((m) => [m.name, m]));
    assert.deepEqual(models.a?.settings?.rpc, ["10.0.0.2:50052", "10.0.0.3:50052"]);
    assert.deepEqual(models.b?.settings?.rpc, ["gpu-box:50052"]);
    assert.equal(models.c?.settings?.rpc, undefined);
    const server = serverConfigOf({ name: "a", path: "/m/a.gguf", settings: models.a?.settings ?? {} });
    assert.deepEqual(server.rpc, ["10.0.0.2:50052", "10.0.0.3:50052"]);
    assert.equal(serverConfigOf({ name: "c", path: "/m/c.gguf", settings: {} }).rpc, undefined);
  });

  test("clear errors: an undefined group, a bad address (in a model or a group)", () => {
    const bad = (text: string, re: RegExp) =>
      assert.throws(
        () => parseConfig(text, "c.yaml"),
        (e: unknown) => e instanceof GglibError && e.kind === "invalid_config" && re.test(e.message),
      );
    bad(
      `models:\n  a: { path: a.gguf, rpc: lab }\n`,
      /models\.a\.rpc: no rpcGroups entry named "lab" \(rpcGroups is empty\)/,
    );
    bad(
      `rpcGroups: { x: [h:1] }\nmodels:\n  a: { path: a.gguf, rpc: lab }\n`,
      /no rpcGroups entry named "lab" \(defined: x\)/,
    );
    bad(`models:\n  a: { path: a.gguf, rpc: [10.0.0.2] }\n`, /models\.a\.rpc\.0: "10\.0\.0\.2" has no port/);
    bad(`rpcGroups: { lab: ["h:1", "h:99999"] }\n`, /rpcGroups\.lab\.1: "h:99999": the port must be/);
    bad(`models:\n  a: { path: a.gguf, rpc: [] }\n`, /models\.a\.rpc/);
    assert.throws(
      () => resolveRpcGroups("nope", {}, "m"),
      /Model 'm' names the RPC group "nope", which is not defined/,
    );
  });

  test("`gglib models set` takes rpc=host:port,… or a group name", () => {
    assert.deepEqual(parseSettingAssignment("rpc=10.0.0.2:50052, 10.0.0.3:50052"), {
      key: "rpc",
      value: ["10.0.0.2:50052", "10.0.0.3:50052"],
    });
    assert.deepEqual(parseSettingAssignment("rpc=lab"), { key: "rpc", value: "lab" });
    assert.deepEqual(parseSettingAssignment("rpc="), { key: "rpc", value: undefined });
    assert.throws(() => parseSettingAssignment("rpc=10.0.0.2:1,nope"), /Invalid value .* for rpc: expected host:port/);
    assert.equal(settingsText({ ctx: 8, rpc: ["a:1", "b:2"] }), "ctx=8 rpc=a:1,b:2");
    assert.equal(settingsText({ rpc: "lab" }), "rpc=lab");
  });

  test("argv: --rpc a,b, validated, and refused by a llama-server without RPC", () => {
    const args = buildServerArgs({ modelPath: "/m/a.gguf", rpc: ["10.0.0.2:50052", " h:1 "] }, 9001);
    assert.deepEqual(args.slice(args.indexOf("--rpc"), args.indexOf("--rpc") + 2), ["--rpc", "10.0.0.2:50052,h:1"]);
    assert.equal(buildServerArgs({ modelPath: "/m/a.gguf", rpc: [] }, 9001).includes("--rpc"), false);
    assert.throws(() => buildServerArgs({ modelPath: "/m/a.gguf", rpc: ["h"] }, 9001), /Invalid rpc: "h"/);
    const caps = { flags: new Set(["-m", "--host", "--port", "--alias", "--metrics"]), version: "b1" };
    assert.throws(
      () => buildServerArgs({ modelPath: "/m/a.gguf", rpc: ["h:1"] }, 9001, caps),
      (e: unknown) => e instanceof GglibError && e.kind === "unsupported_flag" && /--rpc/.test(e.message),
    );
  });
});

void describe("the proxy's view of an RPC model", () => {
  test("the catalog counts only the share on this host; the workers' share is planned apart", async () => {
    const cfg = join(dir, "c.yaml");
    writeFileSync(
      cfg,
      `models:\n  local: { path: ./tiny-deep.gguf, ctx: 2048 }\n  split: { path: ./tiny-deep.gguf, ctx: 2048, rpc: ["127.0.0.1:50052", "127.0.0.1:50052", "127.0.0.1:50053"] }\n`,
    );
    const cat = await buildCatalog({ config: loadConfigFile(cfg) });
    const local = cat.models.find((m) => m.name === "local")!;
    const split = cat.models.find((m) => m.name === "split")!;
    assert.equal(local.rpc, undefined);
    assert.equal(local.spec.estimateBytes, local.estimate.bytes);
    assert.ok(split.rpc);
    assert.deepEqual(split.rpc.workers, ["127.0.0.1:50052", "127.0.0.1:50053"], "each worker once");
    assert.deepEqual(split.server.rpc, ["127.0.0.1:50052", "127.0.0.1:50053"]);
    assert.deepEqual(split.spec.rpc, ["127.0.0.1:50052", "127.0.0.1:50053"]);
    assert.deepEqual(split.server.extraArgs?.slice(0, 2), ["-lv", "4"], "buffer lines per device, for the split");
    assert.equal(local.server.extraArgs, undefined);
    assert.equal(split.spec.estimateBytes, split.rpc.localBytes);
    assert.ok(split.rpc.remoteBytes > 0);
    assert.ok(split.rpc.localBytes < split.estimate.bytes, "the local share is less than the whole model");
    // every weight of the blocks and the output head is remote: local keeps the embeddings and buffers
    assert.ok(split.rpc.remoteBytes > split.estimate.weightsBytes / 2);
    assert.notEqual(split.spec.fingerprint, local.spec.fingerprint);
  });

  test("a registered model may name a group of the config file; an unknown group fails its load, not the catalog", async () => {
    const cfg = join(dir, "groups.yaml");
    writeFileSync(cfg, `rpcGroups:\n  lab: ["10.0.0.2:50052"]\n`);
    const path = join(dir, "tiny-deep.gguf");
    const registry = {
      list: () => [
        { name: "reg-a", aliases: [], path, shards: [path], settings: { rpc: "lab" } },
        { name: "reg-b", aliases: [], path, shards: [path], settings: { rpc: "nope" } },
      ],
    };
    const cat = await buildCatalog({ config: loadConfigFile(cfg), registry });
    const a = cat.models.find((m) => m.name === "reg-a")!;
    const b = cat.models.find((m) => m.name === "reg-b")!;
    assert.deepEqual(a.rpc?.workers, ["10.0.0.2:50052"]);
    assert.deepEqual(a.server.rpc, ["10.0.0.2:50052"]);
    assert.equal(b.server.rpc, undefined);
    assert.match(b.rpc?.error ?? "", /names the RPC group "nope", which is not defined/);
    await assert.rejects(
      new RpcChecker({ probe: () => Promise.reject(new Error("not probed")) }).preflight(b),
      /"nope"/,
    );
  });

  test("`gglib models fit` shows the share here and on the workers", async () => {
    const data = join(dir, "fit-data");
    mkdirSync(data, { recursive: true });
    writeFileSync(
      join(data, "config.yaml"),
      `rpcGroups: { lab: ["10.0.0.2:50052"] }\nmodels:\n  split: { path: ${join(dir, "tiny-deep.gguf")}, rpc: lab }\n  plain: { path: ${join(dir, "tiny-deep.gguf")} }\n`,
    );
    const env = { ...process.env, GGLIB_DATA_DIR: data };
    const box = {
      ram: { totalBytes: 16 * GB, availableBytes: 8 * GB, source: "proc-meminfo" as const },
      gpus: [],
      takenAt: 0,
    };
    const probe = { probe: () => Promise.reject(new Error("not used")), memory: () => Promise.resolve(box) };
    const split = await fitReport("split", { env }, probe);
    assert.deepEqual(split.rpc?.workers, ["10.0.0.2:50052"]);
    assert.ok(split.rpc && split.rpc.localBytes < split.advice.estimate.totalBytes && split.rpc.remoteBytes > 0);
    assert.match(
      formatFitReport(split, colors(process.stdout)),
      /Split over RPC \(10\.0\.0\.2:50052\): ~.* here \+ ~.* on the workers/,
    );
    assert.equal((await fitReport("plain", { env }, probe)).rpc, undefined);
  });

  test("a model larger than the budget loads beside another when its local share fits", () => {
    const s = new Scheduler(
      [
        { name: "resident", estimateBytes: 0.7 * GB, fingerprint: "1" },
        // 40 GB in all, 0.2 GB of it on this host
        { name: "big", estimateBytes: 0.2 * GB, fingerprint: "1", rpc: ["10.0.0.2:50052"] },
      ],
      { budgetBytes: 1 * GB },
    );
    const a = s.handle({ type: "request", id: "1", model: "resident", now: 1 });
    s.handle({
      type: "loadSucceeded",
      model: "resident",
      instance: a.find((x) => x.type === "start")!.instance,
      now: 2,
    });
    const b = s.handle({ type: "request", id: "2", model: "big", now: 3 });
    assert.ok(
      b.some((x) => x.type === "start" && x.model === "big"),
      "big starts",
    );
    assert.ok(!b.some((x) => x.type === "stop"), "nothing is evicted for it");
  });

  test("two models on one worker never hold room together: the other is evicted (or waited for)", () => {
    const o = (name: string, status: string, rpc?: string[], pinned = false): Occupant => ({
      spec: { name, pinned, rpc },
      status,
      inFlight: 0,
      lastUsed: 0,
    });
    const limits = { maxModels: 8, budgetBytes: 100 * GB };
    const need = () => GB;
    const t = o("t", "unloaded", ["w:1", "w:2"]);
    const sharing = o("a", "ready", ["w:2"]);
    const apart = o("b", "ready", ["w:3"]);
    assert.equal(fits([apart, t], t, limits, need), true);
    assert.equal(fits([sharing, t], t, limits, need), false);
    assert.equal(fits([o("x", "ready"), t], t, limits, need), true, "a local model shares nothing");
    const plan = planRoom(t, [sharing, apart], limits, need);
    assert.equal(plan.kind, "evict");
    assert.deepEqual(plan.kind === "evict" ? plan.victims.map((v) => v.spec.name) : [], ["a"]);
    assert.equal(planRoom(t, [o("p", "ready", ["w:1"], true)], limits, need).kind, "noRoom", "a pinned holder stays");
    assert.deepEqual(planRoom(t, [o("s", "stopping", ["w:1"])], limits, need), { kind: "evict", victims: [] });
  });

  test("llama-server's buffer lines: RPC buffers per worker, apart from this host's", () => {
    // real lines of the rig's llama-server (80fb11a) with one loopback rpc-server, tiny model, -lv 4
    const lines = [
      "0.00.052.655 I load_tensors:   CPU_Mapped model buffer size =     0.05 MiB",
      "0.00.052.672 I load_tensors: RPC0[127.0.0.1:50990] model buffer size =     0.33 MiB",
      "0.00.055.520 I llama_context:        CPU  output buffer size =     0.01 MiB",
      "0.00.055.752 I llama_kv_cache: RPC0[127.0.0.1:50990] KV buffer size =     0.25 MiB",
      "0.00.057.620 I sched_reserve: RPC0[127.0.0.1:50990] compute buffer size =     1.63 MiB",
      "0.00.057.641 I sched_reserve:        CPU compute buffer size =     0.76 MiB",
      "0.00.057.641 I sched_reserve: RPC1[10.0.0.3:50052] compute buffer size =     1.00 MiB",
    ];
    const m = parseLlamaMemoryLog(lines);
    assert.equal(m.totalBytes, Math.round((0.05 + 0.01 + 0.76) * MiB));
    assert.equal(m.hostBytes, m.totalBytes);
    assert.equal(m.gpuBytes, 0);
    assert.equal(m.modelBytes, Math.round(0.05 * MiB));
    assert.deepEqual(m.remote, {
      "127.0.0.1:50990": Math.round((0.33 + 0.25 + 1.63) * MiB),
      "10.0.0.3:50052": Math.round(1 * MiB),
    });
    assert.equal(m.remoteBytes, Math.round((0.33 + 0.25 + 1.63 + 1) * MiB));
    assert.equal(parseLlamaMemoryLog(lines.filter((l) => !l.includes("RPC"))).remote, undefined);
  });

  test("a ggml abort is llama-server's reason (a lost or missing worker)", () => {
    const died = [
      "0.16.384.641 I slot init_sampler: id  3 | task 21 | init sampler, took 0.00 ms, tokens: text = 22, total = 22",
      "/root/.cache/gglib-runtime/rig/work/src/ggml/src/ggml-rpc/ggml-rpc.cpp:569: Remote RPC server crashed or returned malformed response",
      "0.16.384.871 E send failed (bytes_sent=0, size_to_send=8)",
      "#7  0x0000560d0b4ead15 in llama_context::decode(llama_batch const&) ()",
    ];
    assert.equal(ggmlAbortMessage(died[1]!), "Remote RPC server crashed or returned malformed response");
    assert.equal(ggmlAbortMessage(died[2]!), undefined);
    assert.equal(ggmlAbortMessage(died[3]!), undefined);
    assert.equal(failureReason(died), "Remote RPC server crashed or returned malformed response");
    assert.equal(
      failureReason(["/src/ggml/src/ggml-rpc/ggml-rpc.cpp:547: Failed to connect to 127.0.0.1:50991"]),
      "Failed to connect to 127.0.0.1:50991",
    );
  });
});
