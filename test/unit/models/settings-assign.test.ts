import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { parseDurationSeconds, parseSettingAssignment, splitArgs } from "../../../src/models/settings-assign.js";

describe("models set key=value", () => {
  test("parses every key", () => {
    assert.deepEqual(parseSettingAssignment("ctx=8192"), { key: "ctx", value: 8192 });
    assert.deepEqual(parseSettingAssignment("ctx-size=0"), { key: "ctx", value: 0 });
    assert.deepEqual(parseSettingAssignment("gpu-layers=all"), { key: "gpuLayers", value: -1 });
    assert.deepEqual(parseSettingAssignment("ngl=33"), { key: "gpuLayers", value: 33 });
    assert.deepEqual(parseSettingAssignment("jinja=off"), { key: "jinja", value: false });
    assert.deepEqual(parseSettingAssignment("reasoning-format=deepseek"), {
      key: "reasoningFormat",
      value: "deepseek",
    });
    assert.deepEqual(parseSettingAssignment("parallel=4"), { key: "parallel", value: 4 });
    assert.deepEqual(parseSettingAssignment("ttl=5m"), { key: "ttl", value: 300 });
    assert.deepEqual(parseSettingAssignment("pinned=yes"), { key: "pinned", value: true });
    assert.deepEqual(parseSettingAssignment("preload=1"), { key: "preload", value: true });
    assert.deepEqual(parseSettingAssignment(`extra-args=--temp 0.2 --chat-template-kwargs '{"a": 1}'`), {
      key: "extraArgs",
      value: ["--temp", "0.2", "--chat-template-kwargs", '{"a": 1}'],
    });
    assert.deepEqual(parseSettingAssignment("ctx="), { key: "ctx", value: undefined });
    assert.deepEqual(parseSettingAssignment("gpuLayers=2"), { key: "gpuLayers", value: 2 });
  });

  test("rejects bad keys and values, naming what is expected", () => {
    assert.throws(() => parseSettingAssignment("ctx"), /not key=value/);
    assert.throws(() => parseSettingAssignment("color=red"), /Unknown setting "color"/);
    assert.throws(() => parseSettingAssignment("ctx=big"), /integer >= 0/);
    assert.throws(() => parseSettingAssignment("parallel=0"), /integer >= 1/);
    assert.throws(() => parseSettingAssignment("jinja=maybe"), /true or false/);
    assert.throws(() => parseSettingAssignment("reasoning-format=xml"), /none \| deepseek/);
    assert.throws(() => parseSettingAssignment("ttl=soon"), /seconds/);
  });

  test("splitArgs and durations", () => {
    assert.deepEqual(splitArgs(`a "b c" '' d`), ["a", "b c", "", "d"]);
    assert.throws(() => splitArgs(`"open`), /Unterminated/);
    assert.equal(parseDurationSeconds("ttl", "1h"), 3600);
    assert.equal(parseDurationSeconds("ttl", "90"), 90);
    assert.equal(parseDurationSeconds("ttl", "0"), 0);
  });
});
