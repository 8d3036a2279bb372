#!/usr/bin/env bash
# Build, check and test the TypeScript client (clients/typescript):
#
#   scripts/test-client-ts.sh [PYEXEC]     (default: build/pyexec)
#
# Installs its devDependencies exactly as package-lock.json pins them (npm ci,
# from npm's cache when they are there), builds it (types generated from
# docs/openapi.json and the client's types checked against them; ESM and
# CommonJS), type-checks the client and examples/ (strict), checks what
# `npm pack` would publish, installs the packed tarball into a scratch
# project and loads it both ways, then runs the tests (node --test) against
# a `pyexec serve` they start on loopback ports.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
pyexec=$(realpath "${1:-${PYEXEC_BIN:-$root/build/pyexec}}")
cd "$root/clients/typescript"

for cmd in node npm; do
  command -v "$cmd" >/dev/null || { echo "test-client-ts: $cmd is missing (scripts/deps.sh test)" >&2; exit 1; }
done
node -e 'const [maj] = process.versions.node.split(".").map(Number);
  if (maj < 18) { console.error(`test-client-ts: node ${process.version}; the client needs 18 or later`); process.exit(1); }'
[[ -x $pyexec ]] || { echo "test-client-ts: $pyexec is not built (meson setup build && ninja -C build)" >&2; exit 1; }
[[ -f $root/docs/openapi.json ]] || { echo "test-client-ts: $root/docs/openapi.json is missing" >&2; exit 1; }

echo "== npm ci"
npm ci --prefer-offline --no-audit --no-fund

echo "== build (types from docs/openapi.json, checked; ESM and CommonJS)"
npm run --silent build

echo "== tsc --noEmit (strict): the client and examples/"
node node_modules/typescript/bin/tsc -p tsconfig.json --noEmit
node node_modules/typescript/bin/tsc -p examples/tsconfig.json

echo "== npm pack --dry-run"
npm pack --dry-run --json --ignore-scripts 2>/dev/null | node -e '
  const files = JSON.parse(require("fs").readFileSync(0, "utf8"))[0].files.map((f) => f.path);
  const want = ["LICENSE", "README.md", "package.json", "dist/index.js", "dist/index.d.ts",
    "dist/client.js", "dist/client.d.ts", "dist/types.d.ts", "dist/cjs/index.js", "dist/cjs/index.d.ts",
    "dist/cjs/package.json"];
  const missing = want.filter((f) => !files.includes(f));
  const stray = files.filter((f) => !/^(LICENSE|README\.md|package\.json|dist\/.*\.(js|d\.ts|json))$/.test(f));
  if (missing.length || stray.length) {
    console.error("test-client-ts: the tarball lacks", missing, "and has", stray);
    process.exit(1);
  }
  console.log(`${files.length} files: ${files.join(" ")}`);'

echo "== the packed tarball, installed and loaded (import and require)"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
tarball=$(npm pack --silent --ignore-scripts --pack-destination "$scratch" | tail -n 1)
(
  cd "$scratch"
  echo '{"name": "consumer", "private": true}' > package.json
  npm install --offline --no-audit --no-fund --silent "./$tarball"
  node --input-type=module -e 'import { PyexecClient, verifyWebhook, PythonExecutor } from "@pyexec/client";
    if (typeof PyexecClient !== "function" || typeof verifyWebhook !== "function" || typeof PythonExecutor !== "function") process.exit(1);'
  node -e 'const { PyexecClient, PyexecError } = require("@pyexec/client");
    if (typeof PyexecClient !== "function" || typeof PyexecError !== "function") process.exit(1);'
)
echo "ok: import and require"

echo "== node --test against $pyexec"
PYEXEC_BIN=$pyexec node --test test/*.test.mjs
