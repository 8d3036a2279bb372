// The event-stream parser and the retry rules, without the service: a node
// http server on loopback answers as the test needs.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { describe, it } from "node:test";
import { PyexecClient, PyexecError, SseParser } from "../dist/index.js";

describe("SseParser", () => {
  const stream = 'event: stdout\ndata: "a\\n"\n\n: comment\nevent: result\ndata: {"x":\ndata: 1}\n\n';

  it("gives the same events whatever the pieces the text arrives in", () => {
    const whole = [];
    const p = new SseParser((e) => whole.push(e));
    p.push(stream);
    assert.deepEqual(
      whole.map((e) => [e.event, e.data]),
      [
        ["stdout", '"a\\n"'],
        ["result", '{"x":\n1}'],
      ],
    );
    for (const eol of ["\n", "\r\n", "\r"]) {
      const text = stream.replaceAll("\n", eol);
      for (let size = 1; size <= 7; size++) {
        const got = [];
        const q = new SseParser((e) => got.push(e));
        for (let i = 0; i < text.length; i += size) q.push(text.slice(i, i + size));
        q.end();
        assert.deepEqual(got, whole, `line ends ${JSON.stringify(eol)}, pieces of ${size}`);
      }
    }
  });

  it("drops an event whose blank line never came", () => {
    const got = [];
    const p = new SseParser((e) => got.push(e));
    p.push("event: stdout\ndata: 1\n");
    p.end();
    assert.deepEqual(got, []);
  });
});

/** A server answering each request with answers[i] ({status, headers, body}), recording the requests. */
async function scripted(answers) {
  const seen = [];
  const http = createServer((req, res) => {
    seen.push({ method: req.method, url: req.url, headers: req.headers });
    const a = answers[Math.min(seen.length - 1, answers.length - 1)];
    if (a === "hang") return;
    res.writeHead(a.status, { "Content-Type": "application/json", "X-Request-Id": `r${seen.length}`, ...a.headers });
    res.end(JSON.stringify(a.body));
  });
  await new Promise((r) => http.listen(0, "127.0.0.1", r));
  return { baseUrl: `http://127.0.0.1:${http.address().port}`, seen, close: () => http.closeAllConnections?.() ?? http.close() };
}

const busy = { status: 503, headers: { "Retry-After": "0" }, body: { error: { code: "queue_full", message: "full" } } };
const limited = { status: 429, headers: { "Retry-After": "0" }, body: { error: { code: "rate_limited", message: "slow down" } } };

describe("retries", () => {
  it("GET is tried again after 503 and 429, up to retries times", async () => {
    const s = await scripted([busy, limited, { status: 200, body: { jobs: [] } }]);
    try {
      const c = new PyexecClient({ baseUrl: s.baseUrl, retries: 2 });
      assert.deepEqual(await c.jobs.list(), []);
      assert.equal(s.seen.length, 3);
      const once = new PyexecClient({ baseUrl: s.baseUrl, retries: 1 });
      s.seen.length = 0;
      await assert.rejects(once.jobs.list(), (e) => {
        assert.ok(e instanceof PyexecError);
        assert.equal(e.status, 429);
        assert.equal(e.code, "rate_limited");
        assert.equal(e.requestId, "r2");
        assert.equal(e.retryAfter, 0);
        return true;
      });
      assert.equal(s.seen.length, 2);
    } finally {
      s.close();
    }
  });

  it("a POST is tried again only with an Idempotency-Key, sent each time", async () => {
    const s = await scripted([busy, { status: 202, body: { id: "a".repeat(32), state: "queued" } }]);
    try {
      const c = new PyexecClient({ baseUrl: s.baseUrl });
      await assert.rejects(c.execute({ code: "1" }), { status: 503, code: "queue_full" });
      assert.equal(s.seen.length, 1);
      s.seen.length = 0;
      const r = await c.submissions.create({ code: "1" }, { idempotencyKey: "key-7" });
      assert.equal(r.state, "queued");
      assert.deepEqual(
        s.seen.map((q) => q.headers["idempotency-key"]),
        ["key-7", "key-7"],
      );
    } finally {
      s.close();
    }
  });

  it("does not wait a Retry-After longer than maxRetryDelayMs", async () => {
    const s = await scripted([{ ...busy, headers: { "Retry-After": "120" } }]);
    try {
      const c = new PyexecClient({ baseUrl: s.baseUrl, maxRetryDelayMs: 1000 });
      await assert.rejects(c.health(), { status: 503, retryAfter: 120 });
      assert.equal(s.seen.length, 1);
    } finally {
      s.close();
    }
  });

  it("a service that does not answer is a timeout; an unreachable one a network_error", async () => {
    const s = await scripted(["hang"]);
    try {
      const c = new PyexecClient({ baseUrl: s.baseUrl, timeoutMs: 200 });
      await assert.rejects(c.health(), { code: "timeout", status: 0 });
    } finally {
      s.close();
    }
    await assert.rejects(new PyexecClient({ baseUrl: "http://127.0.0.1:1" }).health(), { code: "network_error" });
  });

  it("sends the API key as a bearer token", async () => {
    const s = await scripted([{ status: 200, body: { status: "ok", version: "x", uptimeSeconds: 1, ready: true } }]);
    try {
      await new PyexecClient({ baseUrl: s.baseUrl + "/", apiKey: "k".repeat(20) }).health();
      assert.equal(s.seen[0].headers.authorization, `Bearer ${"k".repeat(20)}`);
      assert.equal(s.seen[0].url, "/health");
    } finally {
      s.close();
    }
  });
});
