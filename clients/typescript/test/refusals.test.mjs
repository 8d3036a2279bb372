// 401, 429 and 503 from a real `pyexec serve`, as typed PyexecErrors.
import assert from "node:assert/strict";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { PyexecClient, PyexecError } from "../dist/index.js";
import { serve, tempDir } from "./serve.mjs";

/** A fetch that counts the requests it sends, by method and path. */
function countingFetch() {
  const calls = [];
  const f = (url, init) => {
    calls.push(`${init?.method ?? "GET"} ${new URL(url).pathname}`);
    return fetch(url, init);
  };
  return { fetch: f, calls };
}

async function stopped(srv) {
  const code = await srv.stop();
  assert.equal(code, 0, `pyexec serve exited ${code}:\n${srv.log().slice(-3000)}`);
}

describe("authentication", () => {
  it("a wrong or missing key is 401 unauthorized; the right one runs", async () => {
    const dir = tempDir();
    const keys = join(dir, "keys");
    writeFileSync(keys, "# test keys\nkey-one-0123456789abcdef\n");
    const srv = await serve({ API_KEYS_FILE: keys });
    try {
      const wrong = new PyexecClient({ baseUrl: srv.baseUrl, apiKey: "key-two-fedcba9876543210" });
      await assert.rejects(wrong.execute({ code: "print(1)" }), (e) => {
        assert.ok(e instanceof PyexecError);
        assert.equal(e.status, 401);
        assert.equal(e.code, "unauthorized");
        assert.match(e.requestId, /^[0-9a-f]{32}$/);
        return true;
      });
      await assert.rejects(wrong.health(), { status: 401, code: "unauthorized" });
      const none = new PyexecClient({ baseUrl: srv.baseUrl });
      await assert.rejects(none.jobs.list(), { status: 401 });
      assert.equal((await none.ready()).status, "ready");
      const right = new PyexecClient({ baseUrl: srv.baseUrl, apiKey: "key-one-0123456789abcdef" });
      assert.equal((await right.execute({ code: "print(1)" })).stdout, "1\n");
    } finally {
      await stopped(srv);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("rate limit", () => {
  it("429 carries Retry-After; only idempotent calls are tried again after it", async () => {
    const srv = await serve({ RATE_LIMIT_MAX: 1, RATE_LIMIT_WINDOW: 5000 });
    try {
      const counted = countingFetch();
      const client = new PyexecClient({ baseUrl: srv.baseUrl, fetch: counted.fetch });
      assert.equal((await client.execute({ code: "print(1)" })).status, "ok");
      await assert.rejects(client.execute({ code: "print(2)" }), (e) => {
        assert.ok(e instanceof PyexecError);
        assert.equal(e.status, 429);
        assert.equal(e.code, "rate_limited");
        assert.ok(e.retryAfter >= 1 && e.retryAfter <= 5, `retryAfter ${e.retryAfter}`);
        return true;
      });
      assert.deepEqual(counted.calls, ["POST /api/execute", "POST /api/execute"], "execute is never retried");

      // A submission with an Idempotency-Key is safe to send again: it waits
      // out the window and goes through.
      counted.calls.length = 0;
      const noRetry = new PyexecClient({ baseUrl: srv.baseUrl, retries: 0 });
      await assert.rejects(noRetry.submissions.create({ code: "print(3)" }, { idempotencyKey: "k-0" }), {
        status: 429,
      });
      const s = await client.submissions.create({ code: "print(3)" }, { idempotencyKey: "k-1", wait: 20000 });
      assert.equal(s.state, "done");
      assert.ok(counted.calls.length >= 2, `calls: ${counted.calls}`);
      assert.ok(counted.calls.every((c) => c === "POST /api/submissions"));
    } finally {
      await stopped(srv);
    }
  });
});

describe("queue full", () => {
  it("503 queue_full while the only slot is taken and nothing may wait", async () => {
    const srv = await serve({ MAX_CONCURRENT_EXECUTIONS: 1, EXECUTION_QUEUE_SIZE: 0, RATE_LIMIT_MAX: 0 });
    try {
      const client = new PyexecClient({ baseUrl: srv.baseUrl });
      const hold = new AbortController();
      let running;
      const started = new Promise((r) => (running = r));
      const busy = client
        .executeStream(
          { code: "import time\nprint('started', flush=True)\ntime.sleep(60)", timeout: 10000 },
          { signal: hold.signal, onStdout: () => running() },
        )
        .catch((e) => e);
      await started;
      await assert.rejects(client.execute({ code: "print(1)" }), (e) => {
        assert.ok(e instanceof PyexecError);
        assert.equal(e.status, 503);
        assert.equal(e.code, "queue_full");
        assert.equal(e.retryAfter, 1);
        return true;
      });
      hold.abort(new Error("done holding the slot"));
      assert.equal((await busy).message, "done holding the slot");
    } finally {
      await stopped(srv);
    }
  });
});
