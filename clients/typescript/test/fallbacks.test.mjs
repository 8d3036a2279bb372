// Platforms without AbortSignal.any, AbortSignal.timeout or a global
// WebCrypto (older Node 18 releases): the client's own fallbacks.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { after, before, describe, it } from "node:test";

let client;
let http;
let lib;

before(async () => {
  delete AbortSignal.any;
  delete AbortSignal.timeout;
  Object.defineProperty(globalThis, "crypto", { value: undefined, configurable: true });
  assert.equal(globalThis.crypto, undefined);
  lib = await import("../dist/index.js");
  http = createServer(() => {}); // never answers
  http.requestTimeout = 0;
  await new Promise((r) => http.listen(0, "127.0.0.1", r));
  client = new lib.PyexecClient({ baseUrl: `http://127.0.0.1:${http.address().port}`, timeoutMs: 200 });
});

after(() => {
  http.closeAllConnections();
  http.close();
});

describe("without AbortSignal.any and AbortSignal.timeout", () => {
  /** The call's outcome, or "hung" when it has none within 20 s. */
  const settle = (p) =>
    Promise.race([p.then(() => "resolved", (e) => e), new Promise((r) => setTimeout(() => r("hung"), 20000))]);

  it("the time limit still ends a call", async () => {
    const outcome = await settle(client.health({ signal: new AbortController().signal }));
    assert.equal(outcome.code, "timeout");
  });

  it("the caller's signal still aborts it, with the caller's reason", async () => {
    const c = new AbortController();
    const p = client.health({ signal: c.signal, timeoutMs: 60000 });
    setTimeout(() => c.abort(new Error("stop")), 50);
    assert.equal((await settle(p)).message, "stop");
  });
});

describe("without a global WebCrypto", () => {
  it("verifyWebhook uses node:crypto's", async () => {
    const secret = `whsec_${Buffer.alloc(32, 7).toString("base64")}`;
    const ts = Math.floor(Date.now() / 1000);
    const body = '{"type":"submission.done","timestamp":"t","data":{"id":"a","state":"done"}}';
    const sig = await lib.signWebhook(secret, "msg_a", ts, body);
    const headers = { "webhook-id": "msg_a", "webhook-timestamp": String(ts), "webhook-signature": sig };
    assert.equal((await lib.verifyWebhook(secret, headers, body)).data.id, "a");
    await assert.rejects(lib.verifyWebhook(secret, headers, body.replace('"a"', '"b"')), lib.WebhookVerificationError);
  });
});
