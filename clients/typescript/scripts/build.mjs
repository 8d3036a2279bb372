// Builds the package: types generated from the OpenAPI description, the
// client's types checked against them, then ESM (dist/) and CommonJS
// (dist/cjs/) with their .d.ts files.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const spec = process.env.PYEXEC_OPENAPI ?? join(root, "..", "..", "docs", "openapi.json");
const run = (script, args) => execFileSync(process.execPath, [join(root, "node_modules", script), ...args], { cwd: root, stdio: "inherit" });
const tsc = (project) => run("typescript/bin/tsc", ["-p", project]);

if (!existsSync(spec)) {
  console.error(`build: ${spec} is missing (the OpenAPI description the types are checked against)`);
  process.exit(1);
}
mkdirSync(join(root, "generated"), { recursive: true });
run("openapi-typescript/bin/cli.js", [spec, "--default-non-nullable", "false", "-o", join(root, "generated", "openapi.d.ts"), "--silent"]);
tsc("tsconfig.check.json");
rmSync(join(root, "dist"), { recursive: true, force: true });
tsc("tsconfig.json");
tsc("tsconfig.cjs.json");
writeFileSync(join(root, "dist", "cjs", "package.json"), '{"type": "commonjs"}\n');
console.log("build: dist/ (ESM), dist/cjs/ (CommonJS), types checked against " + spec);
