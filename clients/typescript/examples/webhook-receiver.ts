// Receive the callbacks of submissions sent with a callbackUrl.
import { createServer } from "node:http";
import { verifyWebhook, WebhookVerificationError } from "@pyexec/client";

const secret = process.env.WEBHOOK_SECRET ?? ""; // whsec_..., the service's WEBHOOK_SECRET
const seen = new Set<string>();

createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    verifyWebhook(secret, req.headers, Buffer.concat(chunks))
      .then((event) => {
        const id = String(req.headers["webhook-id"]);
        if (!seen.has(id)) {
          // Deliveries are at least once: the webhook-id is the same on every attempt.
          seen.add(id);
          console.log(event.data.id, event.data.httpStatus, event.type);
        }
        res.writeHead(204).end();
      })
      .catch((e: unknown) => {
        res.writeHead(e instanceof WebhookVerificationError ? 401 : 500).end();
      });
  });
}).listen(8080, "127.0.0.1");
