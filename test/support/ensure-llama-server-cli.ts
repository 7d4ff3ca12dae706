// `npm run rig:llama-server`: builds (once) and prints the path of the test rig's llama-server.
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { ensureLlamaServer } from "./llama-server.js";

const i = process.argv.indexOf("--print-path-to");
const path = await ensureLlamaServer();
if (i > 0 && process.argv[i + 1]) {
  const out = process.argv[i + 1]!;
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, path + "\n");
}
process.stdout.write(path + "\n");
