import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { InputAssembler, parseSlashCommand, unescapeMessage, HELP_TEXT } from "../../../src/chat/commands.js";
import { Conversation, saveConversation, saveFormatFor } from "../../../src/chat/conversation.js";
import { loadHistory, saveHistory } from "../../../src/chat/input.js";

describe("slash commands", () => {
  test("each command and its argument", () => {
    assert.deepEqual(parseSlashCommand("/help"), { name: "help" });
    assert.deepEqual(parseSlashCommand("/?"), { name: "help" });
    assert.deepEqual(parseSlashCommand("  /exit  "), { name: "exit" });
    assert.deepEqual(parseSlashCommand("/bye"), { name: "exit" });
    assert.deepEqual(parseSlashCommand("/clear"), { name: "clear" });
    assert.deepEqual(parseSlashCommand("/model"), { name: "model" });
    assert.deepEqual(parseSlashCommand("/model tiny-a"), { name: "model", model: "tiny-a" });
    assert.deepEqual(parseSlashCommand("/system You are terse.  "), { name: "system", text: "You are terse." });
    assert.deepEqual(parseSlashCommand("/system"), { name: "system" });
    assert.deepEqual(parseSlashCommand("/think hide"), { name: "think", mode: "hide" });
    assert.deepEqual(parseSlashCommand("/THINK Show"), { name: "think", mode: "show" });
    assert.deepEqual(parseSlashCommand("/save chat.md"), { name: "save", file: "chat.md" });
    assert.deepEqual(parseSlashCommand('/save "my chat.json"'), { name: "save", file: "my chat.json" });
  });

  test("mistakes get a message, not a crash", () => {
    assert.equal(parseSlashCommand("/think maybe")?.name, "invalid");
    assert.equal(parseSlashCommand("/save")?.name, "invalid");
    const unknown = parseSlashCommand("/frobnicate");
    assert.equal(unknown?.name, "invalid");
    assert.match((unknown as { message: string }).message, /unknown command \/frobnicate.*\/help/);
  });

  test("messages are not commands; // escapes a leading slash", () => {
    assert.equal(parseSlashCommand("hello /help"), undefined);
    assert.equal(parseSlashCommand("//etc/passwd is a file"), undefined);
    assert.equal(unescapeMessage("//etc/passwd is a file"), "/etc/passwd is a file");
    assert.equal(unescapeMessage("plain"), "plain");
  });

  test("help documents every command and the multi-line input", () => {
    for (const c of ["/help", "/model", "/system", "/clear", "/think", "/save", "/exit", '"""', "\\"])
      assert.ok(HELP_TEXT.includes(c), c);
  });
});

describe("InputAssembler", () => {
  const feed = (lines: string[]) => {
    const a = new InputAssembler();
    const out: string[] = [];
    const cont: boolean[] = [];
    for (const l of lines) {
      const s = a.push(l);
      if (s.done) out.push(s.text);
      cont.push(a.continuing);
    }
    return { out, cont };
  };

  test("one line is one message", () => {
    assert.deepEqual(feed(["hi"]).out, ["hi"]);
  });

  test("trailing backslash continues", () => {
    const r = feed(["first \\", "second \\", "third"]);
    assert.deepEqual(r.out, ["first \nsecond \nthird"]);
    assert.deepEqual(r.cont, [true, true, false]);
  });

  test("triple-quote blocks keep blank lines and indentation", () => {
    const r = feed(['"""', "def f():", "", "    return 1", '"""']);
    assert.deepEqual(r.out, ["def f():\n\n    return 1"]);
    assert.deepEqual(feed(['"""inline"""']).out, ["inline"]);
    assert.deepEqual(feed(['"""start', 'end"""']).out, ["start\nend"]);
  });

  test("pasted lines (pushRaw) join with the line that ends the paste", () => {
    const a = new InputAssembler();
    a.pushRaw("line one");
    a.pushRaw("line two");
    assert.equal(a.continuing, true);
    assert.deepEqual(a.push("line three"), { done: true, text: "line one\nline two\nline three" });
    assert.equal(a.continuing, false);
  });

  test("reset drops an unfinished message", () => {
    const a = new InputAssembler();
    a.push("x \\");
    a.reset();
    assert.deepEqual(a.push("y"), { done: true, text: "y" });
  });
});

describe("Conversation and /save", () => {
  const fixed = () => new Date("2026-01-02T03:04:05.000Z");

  function sample(): Conversation {
    const c = new Conversation("tiny-think", "Be brief.", fixed);
    c.addUser("What is 2+2?");
    c.addAssistant({
      content: "**4**",
      thinking: "2 plus 2 is 4",
      model: "tiny-think",
      finishReason: "stop",
      stats: { totalMs: 900, thinkingMs: 3400, ttftMs: 100 },
    });
    c.addUser("And 3+3?");
    c.addAssistant({ content: "6", model: "tiny-think", cancelled: true, stats: { totalMs: 50 } });
    return c;
  }

  test("request messages: system first, thinking not sent back, empty answers skipped", () => {
    const c = sample();
    c.addUser("next");
    c.addAssistant({ content: "", thinking: "only thoughts", model: "m" });
    assert.deepEqual(c.requestMessages(), [
      { role: "system", content: "Be brief." },
      { role: "user", content: "What is 2+2?" },
      { role: "assistant", content: "**4**" },
      { role: "user", content: "And 3+3?" },
      { role: "assistant", content: "6" },
      { role: "user", content: "next" },
    ]);
  });

  test("dropLastUser removes only a trailing user message; clear keeps the system prompt", () => {
    const c = new Conversation("m", undefined, fixed);
    c.addUser("q");
    c.dropLastUser();
    assert.equal(c.history.length, 0);
    const s = sample();
    s.dropLastUser();
    assert.equal(s.history.length, 4);
    s.clear();
    assert.equal(s.history.length, 0);
    assert.deepEqual(s.requestMessages(), [{ role: "system", content: "Be brief." }]);
  });

  test("save as markdown and as JSON, chosen by extension", async () => {
    const dir = mkdtempSync(join(tmpdir(), "gglib-chat-save-"));
    try {
      assert.equal(saveFormatFor("a.JSON"), "json");
      assert.equal(saveFormatFor("a.md"), "markdown");
      assert.equal(saveFormatFor("notes"), "markdown");
      const c = sample();
      const md = await saveConversation(c, "sub/chat.md", dir);
      assert.equal(md.format, "markdown");
      const text = readFileSync(md.path, "utf8");
      assert.match(text, /^# Chat with tiny-think/);
      assert.match(text, /## System\n\nBe brief\./);
      assert.match(text, /## User\n\nWhat is 2\+2\?/);
      assert.match(
        text,
        /<details>\n<summary>Thought for 3\.4 s<\/summary>\n\n2 plus 2 is 4\n\n<\/details>\n\n\*\*4\*\*/,
      );
      assert.match(text, /_\(cancelled\)_/);
      const js = await saveConversation(c, join(dir, "chat.json"));
      assert.equal(js.format, "json");
      const obj = JSON.parse(readFileSync(js.path, "utf8"));
      assert.equal(obj.format, "gglib-chat/1");
      assert.equal(obj.model, "tiny-think");
      assert.equal(obj.system, "Be brief.");
      assert.equal(obj.messages.length, 4);
      assert.deepEqual(obj.messages[1].thinking, "2 plus 2 is 4");
      assert.equal(obj.messages[1].finish_reason, "stop");
      assert.equal(obj.messages[3].cancelled, true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("history file", () => {
  test("round trip, newest first in memory, oldest first on disk, capped", () => {
    const dir = mkdtempSync(join(tmpdir(), "gglib-chat-hist-"));
    try {
      const file = join(dir, "deep", "chat_history");
      assert.deepEqual(loadHistory(file), []);
      saveHistory(file, ["third", "second", "first"], 2);
      assert.equal(readFileSync(file, "utf8"), "second\nthird\n");
      assert.deepEqual(loadHistory(file), ["third", "second"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
