/**
 * Pure readers of llama-server's log lines (stderr): what went wrong, in its own words.
 * Format: `0.00.019.823 E srv    load_model: failed to load model, '...'` (time, level I/W/E/D, module, text).
 */
const LINE = /^\d+\.\d{2}\.\d{3}\.\d{3} ([IWED]) (.*)$/;

export function logLevel(line: string): "I" | "W" | "E" | "D" | undefined {
  return LINE.exec(line)?.[1] as "I" | "W" | "E" | "D" | undefined;
}

/** The bind failure that llama-server prints before exiting when its port is taken. */
export function isBindFailure(line: string): boolean {
  return line.includes("couldn't bind HTTP server socket") || line.includes("exiting due to HTTP server error");
}

/** llama-server has begun its shutdown (it may still wait for open streams). */
export function isShutdownStarted(line: string): boolean {
  return line.includes("cleaning up before exit");
}

/**
 * The message of a ggml abort (GGML_ABORT / GGML_ASSERT: `…/ggml-rpc.cpp:547: Failed to connect to 10.0.0.2:50052`),
 * which llama-server prints, without a level, right before it dies (SIGABRT). Undefined for any other line.
 */
export function ggmlAbortMessage(line: string): string | undefined {
  const m = /^(?:[A-Za-z]:)?[^\s:]*\.(?:c|cc|cpp|cu|m|mm|h):\d+: (\S.*)$/.exec(line.trim());
  return m ? m[1]!.replace(/\s+/g, " ").trim() : undefined;
}

/**
 * The most telling line(s) of a failed start: a ggml abort first (the reason it died), else error-level lines and bare `error:` lines (argument errors),
 * without the generic tail ("exiting due to ...", "cleaning up before exit").
 */
export function failureReason(lines: readonly string[]): string | undefined {
  for (const l of lines) {
    const abort = ggmlAbortMessage(l);
    if (abort) return abort;
  }
  const errors = lines.filter(
    (l) => logLevel(l) === "E" || /^error[: ]/.test(l) || l.startsWith("error while handling argument"),
  );
  const telling = errors.filter((l) => !/exiting due to|cleaning up before exit/.test(l));
  const pick = telling.length > 0 ? telling : errors;
  if (pick.length === 0) return undefined;
  // the first error usually says why (e.g. gguf_init_from_file: failed to open GGUF file ...)
  return pick[0]!.replace(LINE, "$2").replace(/\s+/g, " ").trim();
}
