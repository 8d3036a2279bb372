import type { WebhookEvent } from "./types.js";

/** The headers of a callback: a Headers, or a plain object (Node's IncomingHttpHeaders). */
export type WebhookHeaders =
  | Headers
  | Record<string, string | string[] | undefined>;

export interface VerifyOptions {
  /** How far webhook-timestamp may be from now, in seconds (default 300). */
  toleranceSeconds?: number;
  /** The current time in ms (default Date.now()), for tests. */
  now?: number;
}

/** Why verifyWebhook refused a callback. */
export class WebhookVerificationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WebhookVerificationError";
  }
}

/** WebCrypto: the global one (browsers, Node 19+), else node:crypto's (Node 18). */
async function getSubtle(): Promise<SubtleCrypto> {
  const g = (globalThis as { crypto?: Crypto }).crypto;
  if (g?.subtle) return g.subtle;
  try {
    const name = "node:crypto";
    const m = (await import(/* @vite-ignore */ /* webpackIgnore: true */ name)) as { webcrypto?: Crypto };
    if (m.webcrypto?.subtle) return m.webcrypto.subtle;
  } catch {
    // not Node
  }
  throw new WebhookVerificationError("WebCrypto (crypto.subtle) is not available here");
}

function header(headers: WebhookHeaders, name: string): string | undefined {
  if (typeof (headers as Headers).get === "function") return (headers as Headers).get(name) ?? undefined;
  const rec = headers as Record<string, string | string[] | undefined>;
  const key = Object.keys(rec).find((k) => k.toLowerCase() === name);
  const v = key === undefined ? undefined : rec[key];
  return Array.isArray(v) ? v.join(" ") : v;
}

function fromBase64(s: string): Uint8Array<ArrayBuffer> {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 !== 0) throw new WebhookVerificationError("not base64");
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function toBase64(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i++) s += String.fromCharCode(b[i]!);
  return btoa(s);
}

/** Compares in time that depends on the lengths only. */
function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  let diff = a.length ^ b.length;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ (b[i % (b.length || 1)] ?? 0);
  return diff === 0;
}

/**
 * Verifies a callback signed as Standard Webhooks specifies (what pyexec
 * sends with WEBHOOK_SECRET): `webhook-signature` holds, space-separated,
 * `v1,<base64 HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}">`
 * keyed with the base64 after `whsec_` in secret; webhook-timestamp must be
 * within the tolerance of now. body is the raw body as received (a string,
 * or its bytes). Resolves with the parsed event; rejects with a
 * WebhookVerificationError otherwise. Uses WebCrypto (Node 18+, browsers).
 */
export async function verifyWebhook(
  secret: string,
  headers: WebhookHeaders,
  body: string | Uint8Array | ArrayBuffer,
  options: VerifyOptions = {},
): Promise<WebhookEvent> {
  const subtle = await getSubtle();
  const id = header(headers, "webhook-id");
  const ts = header(headers, "webhook-timestamp");
  const sigs = header(headers, "webhook-signature");
  if (!id || !ts || !sigs)
    throw new WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature");
  if (!/^\d{1,15}$/.test(ts)) throw new WebhookVerificationError("webhook-timestamp is not a number of seconds");
  const now = Math.floor((options.now ?? Date.now()) / 1000);
  const tolerance = options.toleranceSeconds ?? 300;
  if (Math.abs(now - Number(ts)) > tolerance)
    throw new WebhookVerificationError(`webhook-timestamp is more than ${tolerance} s from now`);

  let key: Uint8Array<ArrayBuffer>;
  try {
    key = fromBase64(secret.startsWith("whsec_") ? secret.slice(6) : secret);
  } catch {
    throw new WebhookVerificationError("the secret is not whsec_ and base64");
  }
  if (key.length === 0) throw new WebhookVerificationError("the secret is empty");
  const bodyBytes =
    typeof body === "string" ? new TextEncoder().encode(body) : body instanceof Uint8Array ? body : new Uint8Array(body);
  const prefix = new TextEncoder().encode(`${id}.${ts}.`);
  const signed = new Uint8Array(prefix.length + bodyBytes.length);
  signed.set(prefix, 0);
  signed.set(bodyBytes, prefix.length);
  const k = await subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const want = new Uint8Array(await subtle.sign("HMAC", k, signed));

  let ok = false;
  for (const s of sigs.split(" ")) {
    if (!s.startsWith("v1,")) continue;
    let got: Uint8Array;
    try {
      got = fromBase64(s.slice(3));
    } catch {
      continue;
    }
    if (constantTimeEqual(want, got)) ok = true; // no early exit: every signature is compared
  }
  if (!ok) throw new WebhookVerificationError("no webhook-signature matches the body");
  try {
    return JSON.parse(new TextDecoder().decode(bodyBytes)) as WebhookEvent;
  } catch {
    throw new WebhookVerificationError("the body is not JSON");
  }
}

/** Signs a body as pyexec does: the webhook-signature value (for tests of a receiver). */
export async function signWebhook(secret: string, id: string, timestamp: number, body: string): Promise<string> {
  const subtle = await getSubtle();
  const key = fromBase64(secret.startsWith("whsec_") ? secret.slice(6) : secret);
  const k = await subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const sig = await subtle.sign("HMAC", k, new TextEncoder().encode(`${id}.${timestamp}.${body}`));
  return `v1,${toBase64(new Uint8Array(sig))}`;
}
