// `npm run schema`: writes schema/gglib-config.schema.json from the zod schema (src/models/settings.ts), the one
// source of the settings. test/unit/proxy/units.test.ts fails when the committed file is not the generated one.
import { writeFileSync } from "node:fs";
import { configJsonSchema } from "../src/models/settings.js";

const out = new URL("../schema/gglib-config.schema.json", import.meta.url);
writeFileSync(out, JSON.stringify(configJsonSchema(), null, 2) + "\n");
process.stdout.write(`wrote ${out.pathname}\n`);
