// A callback from a real `pyexec serve`, received by a node http server on
// loopback and verified with verifyWebhook; and verifyWebhook's refusals.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createServer } from "node:http";
import { describe, it } from "node:test";
import { PyexecClient, WebhookVerificationError, signWebhook, verifyWebhook } from "../dist/index.js";
import { serve } from "./serve.mjs";

const SECRET = `whsec_${randomBytes(32).toString("base64")}`;

/** A receiver on loopback: resolves with the first POST's headers and raw body. */
async function receiver() {
  let got;
  const first = new Promise((r) => (got = r));
  const http = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      res.writeHead(204).end();
      got({ headers: req.headers, body: Buffer.concat(chunks) });
    });
  });
  await new Promise((r) => http.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${http.address().port}/hook`, first, close: () => http.close() };
}

describe("webhooks", () => {
  it("a submission's callback verifies; a tampered body, another secret or an old timestamp does not", async () => {
    const hook = await receiver();
    const srv = await serve({ CALLBACK_ALLOWED_HOSTS: "127.0.0.1", WEBHOOK_SECRET: SECRET, RATE_LIMIT_MAX: 0 });
    try {
      const client = new PyexecClient({ baseUrl: srv.baseUrl });
      const s = await client.submissions.create({ code: "print('called back')", callbackUrl: hook.url });
      const { headers, body } = await hook.first;
      assert.equal(headers["webhook-id"], `msg_${s.id}`);

      const event = await verifyWebhook(SECRET, headers, body);
      assert.equal(event.type, "submission.done");
      assert.equal(event.data.id, s.id);
      assert.equal(event.data.state, "done");
      assert.equal(event.data.result.stdout, "called back\n");
      // The body as a string, and the headers as a Headers object, verify too.
      await verifyWebhook(SECRET, new Headers(headers), body.toString("utf8"));

      const tampered = Buffer.from(body.toString("utf8").replace("called back", "called BACK"));
      await assert.rejects(verifyWebhook(SECRET, headers, tampered), WebhookVerificationError);
      const other = `whsec_${randomBytes(32).toString("base64")}`;
      await assert.rejects(verifyWebhook(other, headers, body), /no webhook-signature matches/);
      const later = (Number(headers["webhook-timestamp"]) + 301) * 1000;
      await assert.rejects(verifyWebhook(SECRET, headers, body, { now: later }), /more than 300 s from now/);
      await verifyWebhook(SECRET, headers, body, { now: later, toleranceSeconds: 600 });
    } finally {
      hook.close();
      const code = await srv.stop();
      assert.equal(code, 0, srv.log().slice(-3000));
    }
  });

  it("checks every signature of the header and refuses what is missing", async () => {
    const ts = Math.floor(Date.now() / 1000);
    const body = '{"type":"submission.done","timestamp":"2026-12-07T10:00:00Z","data":{"id":"x","state":"done"}}';
    const good = await signWebhook(SECRET, "msg_1", ts, body);
    const other = await signWebhook(`whsec_${randomBytes(24).toString("base64")}`, "msg_1", ts, body);
    const h = (sig) => ({ "webhook-id": "msg_1", "webhook-timestamp": String(ts), "webhook-signature": sig });
    assert.equal((await verifyWebhook(SECRET, h(`${other} ${good}`), body)).data.id, "x");
    await assert.rejects(verifyWebhook(SECRET, h(other), body), WebhookVerificationError);
    await assert.rejects(verifyWebhook(SECRET, h(good.replace("v1,", "v2,")), body), WebhookVerificationError);
    await assert.rejects(verifyWebhook(SECRET, h("v1,!!!"), body), WebhookVerificationError);
    await assert.rejects(verifyWebhook(SECRET, h(good), body + " "), WebhookVerificationError);
    await assert.rejects(verifyWebhook(SECRET, { "webhook-id": "msg_1" }, body), /missing/);
    await assert.rejects(
      verifyWebhook(SECRET, { ...h(good), "webhook-timestamp": "soon" }, body),
      /not a number of seconds/,
    );
    await assert.rejects(verifyWebhook("whsec_***", h(good), body), /not whsec_ and base64/);
  });
});
