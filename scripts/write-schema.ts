// Regenerates gateway.schema.json from the zod config schema (`npm run schema`); a unit test keeps the two in step.
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { buildJsonSchema } from "../src/config/json-schema.ts";

const target = fileURLToPath(new URL("../gateway.schema.json", import.meta.url));
writeFileSync(target, `${JSON.stringify(buildJsonSchema(), null, 2)}\n`);
console.log(`wrote ${target}`);
