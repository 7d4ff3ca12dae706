/** `gglib llama status`, as a library: is llama.cpp installed under the data dir, and does its binary run? */
import { existsSync } from "node:fs";
import { paths } from "../../core/paths.js";
import { run } from "../../process/exec.js";
import { readInstallRecord, type InstallRecord } from "./record.js";

export interface LlamaStatus {
  installed: boolean;
  dir: string;
  binaryPath: string;
  record?: InstallRecord;
  /** `--version` ran and exited 0. */
  healthy: boolean;
  versionText?: string;
  /** Why it is not healthy. */
  problem?: string;
  /** GGLIB_LLAMA_SERVER is set: gglib runs that binary instead. */
  override?: string;
}

export async function llamaStatus(env: NodeJS.ProcessEnv = process.env): Promise<LlamaStatus> {
  const dir = paths.llamaDir(env);
  const record = readInstallRecord(paths.llamaInstallRecord(env));
  const binaryPath = record?.binaryPath ?? paths.llamaServerBinary(env);
  const base = {
    dir,
    binaryPath,
    ...(record ? { record } : {}),
    ...(env.GGLIB_LLAMA_SERVER ? { override: env.GGLIB_LLAMA_SERVER } : {}),
  };
  if (!existsSync(binaryPath)) {
    return {
      ...base,
      installed: false,
      healthy: false,
      problem: record ? `the install record exists but ${binaryPath} is gone` : "llama.cpp is not installed",
    };
  }
  try {
    const r = await run(binaryPath, ["--version"], { env, timeoutMs: 30_000 });
    const text = (r.stderr + "\n" + r.stdout).trim();
    if (r.code === 0) return { ...base, installed: true, healthy: true, versionText: text };
    return {
      ...base,
      installed: true,
      healthy: false,
      versionText: text,
      problem: `\`--version\` exited ${r.code ?? r.signal}`,
    };
  } catch (e) {
    return { ...base, installed: true, healthy: false, problem: `cannot run it: ${(e as Error).message}` };
  }
}
