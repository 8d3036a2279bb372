// Starts a real `pyexec serve` on a free loopback port for the tests:
// PYEXEC_BIN, else ../../build/pyexec; waits for /health/ready.
import { spawn } from "node:child_process";
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export const PYEXEC = process.env.PYEXEC_BIN || resolve(here, "..", "..", "..", "build", "pyexec");

export function tempDir(prefix = "pyexec-ts-") {
  return mkdtempSync(join(tmpdir(), prefix));
}

function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.unref();
    s.on("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Starts the service with env (configuration keys) added to a clean
 * environment; resolves with { baseUrl, port, log(), stop() }. stop() sends
 * SIGTERM and resolves with the exit code (and removes the log after a clean exit).
 */
export async function serve(env = {}, { timeoutMs = 30000 } = {}) {
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const dir = tempDir("pyexec-ts-serve-");
    const logPath = join(dir, "serve.log");
    const fd = openSync(logPath, "w");
    const environ = {
      PATH: "/usr/local/bin:/usr/bin:/bin",
      LANG: "C.UTF-8",
      DEFAULT_POLICY: "permissive",
      ...Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v)])),
    };
    const proc = spawn(PYEXEC, ["serve", "--port", String(port)], { env: environ, stdio: ["ignore", fd, fd] });
    closeSync(fd);
    let exited = null;
    const exit = new Promise((r) => proc.on("exit", (code, sig) => r((exited = code ?? sig))));
    const log = () => (existsSync(logPath) ? readFileSync(logPath, "utf8") : "");
    const srv = {
      port,
      baseUrl: `http://127.0.0.1:${port}`,
      log,
      async stop() {
        if (exited === null) proc.kill("SIGTERM");
        const t = setTimeout(() => proc.kill("SIGKILL"), 60000);
        const code = await exit;
        clearTimeout(t);
        if (code === 0) rmSync(dir, { recursive: true, force: true }); // else its log stays for a look
        return code;
      },
    };
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && exited === null) {
      try {
        const r = await fetch(`${srv.baseUrl}/health/ready`, { signal: AbortSignal.timeout(2000) });
        await r.arrayBuffer();
        if (r.status === 200) return srv;
      } catch {
        // not listening yet
      }
      await sleep(50);
    }
    if (exited === null) {
      await srv.stop();
      throw new Error(`pyexec serve not ready within ${timeoutMs} ms:\n${log()}`);
    }
    if (!log().includes("cannot listen")) throw new Error(`pyexec serve exited ${exited}:\n${log()}`);
  }
  throw new Error("could not start pyexec serve");
}
