/**
 * Verifying the engine's webhooks (Standard Webhooks, https://www.standardwebhooks.com).
 *
 * Each delivery carries `webhook-id` (the event id, the same on every retry),
 * `webhook-timestamp` (unix seconds of this attempt) and `webhook-signature`, a
 * space-separated list of `v1,<base64>` (HMAC-SHA256 under the dashboard's webhook secret; one
 * per secret while a secret is being rotated) and `v1a,<base64>` (Ed25519 under the engine's
 * key, whose public half `whpk_...` `getWebhookSigningKey()` returns). Both sign
 * `${id}.${timestamp}.${body}`.
 *
 * Verify the exact bytes received, before parsing them (in a Next.js route handler:
 * `await request.text()`, never `await request.json()`).
 */

import { createPublicKey, verify as verifySignature, type KeyObject } from "node:crypto";

import { Webhook, WebhookVerificationError as StandardWebhooksError } from "standardwebhooks";

import type { WebhookEvent } from "./types.js";

export type { WebhookEvent } from "./types.js";

const SECRET_PREFIX = "whsec_";
const PUBLIC_KEY_PREFIX = "whpk_";
/** Seconds a timestamp may be away from now, either way (as in `standardwebhooks`). */
export const DEFAULT_TOLERANCE_SECONDS = 300;

/** The request is not a genuine, fresh webhook from the engine: answer it with a 4xx. */
export class WebhookVerificationError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "WebhookVerificationError";
  }
}

/** Headers as a fetch `Headers` (Next.js `request.headers`), Node's `req.headers`, or a plain object. */
export type WebhookHeaders =
  | { get(name: string): string | null; forEach(callback: (value: string, key: string) => void): void }
  | Record<string, string | string[] | undefined>;

/** The raw body: a string (`await request.text()`) or its bytes. */
export type WebhookBody = string | Uint8Array | ArrayBuffer;

function headerRecord(headers: WebhookHeaders): Record<string, string> {
  const result: Record<string, string> = {};
  if (typeof (headers as { forEach?: unknown }).forEach === "function" && typeof (headers as { get?: unknown }).get === "function") {
    (headers as { forEach(callback: (value: string, key: string) => void): void }).forEach((value, key) => {
      result[key.toLowerCase()] = value;
    });
    return result;
  }
  for (const [key, value] of Object.entries(headers as Record<string, string | string[] | undefined>)) {
    if (value === undefined) continue;
    result[key.toLowerCase()] = Array.isArray(value) ? value.join(", ") : String(value);
  }
  return result;
}

function bodyBuffer(body: WebhookBody): Buffer {
  if (typeof body === "string") return Buffer.from(body, "utf8");
  if (body instanceof ArrayBuffer) return Buffer.from(body);
  return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
}

function parseEvent(body: Buffer): WebhookEvent {
  let event: unknown;
  try {
    event = JSON.parse(body.toString("utf8"));
  } catch (error) {
    throw new WebhookVerificationError("the body is not JSON", { cause: error });
  }
  const candidate = event as Partial<WebhookEvent> | null;
  if (typeof candidate !== "object" || candidate === null || !candidate.id || !candidate.type) {
    throw new WebhookVerificationError("the body is not a WebhookEvent: it has no id or no type");
  }
  return candidate as WebhookEvent;
}

/**
 * The HMAC key of a webhook secret, as the engine derives it: `whsec_<base64>` is
 * base64-decoded (padding optional); any other secret is its UTF-8 bytes.
 */
export function webhookHmacKey(secret: string): Buffer {
  if (secret.startsWith(SECRET_PREFIX)) {
    const decoded = Buffer.from(secret.slice(SECRET_PREFIX.length).replace(/[^A-Za-z0-9+/]/g, ""), "base64");
    if (decoded.length > 0) return decoded;
  }
  return Buffer.from(secret, "utf8");
}

const webhooks = new Map<string, Webhook>();

function webhookFor(secret: string): Webhook {
  let webhook = webhooks.get(secret);
  if (webhook === undefined) {
    // `standardwebhooks` takes `whsec_<base64>` (or bare base64) and decodes it; the engine uses
    // any other secret as its UTF-8 bytes, so such a secret goes in as base64 of those bytes.
    const key = webhookHmacKey(secret);
    const canonical = secret.startsWith(SECRET_PREFIX) && /^whsec_[A-Za-z0-9+/]+={0,2}$/.test(secret) ? secret : key.toString("base64");
    webhook = new Webhook(canonical);
    if (webhooks.size > 100) webhooks.clear();
    webhooks.set(secret, webhook);
  }
  return webhook;
}

/**
 * Verify a delivery with the dashboard's webhook secret (the `v1` HMAC signature, via
 * `standardwebhooks`) and return its event. Throws `WebhookVerificationError` unless a
 * signature matches and the timestamp is within 5 minutes of now.
 *
 * `secret` is the `webhookSecret` the dashboard registered: a `whsec_<base64>` secret (the
 * Standard Webhooks form: base64 of random bytes, recommended) or any other string (used as
 * its UTF-8 bytes, as the engine does).
 */
export function verifyWebhook(secret: string, headers: WebhookHeaders, body: WebhookBody): WebhookEvent {
  if (!secret) throw new TypeError("verifyWebhook needs the webhook secret");
  const raw = bodyBuffer(body);
  try {
    webhookFor(secret).verify(raw, headerRecord(headers), { jsonParse: false });
  } catch (error) {
    if (error instanceof StandardWebhooksError) {
      throw new WebhookVerificationError(error.message, { cause: error });
    }
    throw error;
  }
  return parseEvent(raw);
}

export interface Ed25519Options {
  /** Seconds the `webhook-timestamp` may be away from `now`, either way (default 300). */
  toleranceSeconds?: number;
  /** The current time (default `new Date()`). */
  now?: Date;
}

const publicKeys = new Map<string, KeyObject>();

/** The `KeyObject` of a `whpk_<base64>` public key (its 32 raw Ed25519 bytes). */
export function ed25519PublicKey(publicKey: string): KeyObject {
  let key = publicKeys.get(publicKey);
  if (key !== undefined) return key;
  const text = publicKey.startsWith(PUBLIC_KEY_PREFIX) ? publicKey.slice(PUBLIC_KEY_PREFIX.length) : publicKey;
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(text)) throw new TypeError("the public key is not `whpk_` followed by base64");
  const raw = Buffer.from(text, "base64");
  if (raw.length !== 32) throw new TypeError(`an Ed25519 public key has 32 bytes, not ${raw.length}`);
  key = createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: raw.toString("base64url") }, format: "jwk" });
  if (publicKeys.size > 100) publicKeys.clear();
  publicKeys.set(publicKey, key);
  return key;
}

/**
 * Verify a delivery with the engine's public key (the `v1a` Ed25519 signature; `publicKey`
 * is `whpk_...` from `getWebhookSigningKey()`, or its `KeyObject`) and return its event. Throws
 * `WebhookVerificationError` unless a signature matches and the timestamp is fresh.
 */
export function verifyWebhookEd25519(
  publicKey: string | KeyObject,
  headers: WebhookHeaders,
  body: WebhookBody,
  options: Ed25519Options = {},
): WebhookEvent {
  const key = typeof publicKey === "string" ? ed25519PublicKey(publicKey) : publicKey;
  const found = headerRecord(headers);
  const id = found["webhook-id"]?.trim();
  const timestamp = found["webhook-timestamp"]?.trim();
  const signatures = found["webhook-signature"]?.trim();
  if (!id || !timestamp || !signatures) throw new WebhookVerificationError("Missing required headers");
  if (!/^\d{1,15}$/.test(timestamp)) throw new WebhookVerificationError("Invalid Signature Headers");
  const tolerance = options.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS;
  const now = Math.floor((options.now ?? new Date()).getTime() / 1000);
  const sent = Number(timestamp);
  if (now - sent > tolerance) throw new WebhookVerificationError("Message timestamp too old");
  if (sent > now + tolerance) throw new WebhookVerificationError("Message timestamp too new");

  const raw = bodyBuffer(body);
  const content = Buffer.concat([Buffer.from(`${id}.${timestamp}.`, "utf8"), raw]);
  for (const entry of signatures.split(/\s+/)) {
    const comma = entry.indexOf(",");
    if (comma < 0 || entry.slice(0, comma) !== "v1a") continue;
    const signature = Buffer.from(entry.slice(comma + 1), "base64");
    if (signature.length !== 64) continue;
    try {
      if (verifySignature(null, content, key, signature)) return parseEvent(raw);
    } catch {
      // a malformed signature is just not a match
    }
  }
  throw new WebhookVerificationError("No matching signature found");
}
