/** The webhook verifiers on locally signed requests (no engine needed, except to cross-check key derivation). */

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHmac, generateKeyPairSync, sign } from "node:crypto";
import { existsSync } from "node:fs";
import { describe, test } from "node:test";

import { WebhookVerificationError, ed25519PublicKey, verifyWebhook, verifyWebhookEd25519, webhookHmacKey } from "../src/index.js";
import { PYTHON, REPO_ROOT } from "./helpers.js";

const { privateKey, publicKey: publicKeyObject } = generateKeyPairSync("ed25519");
const rawPublicKey = Buffer.from(publicKeyObject.export({ format: "jwk" }).x ?? "", "base64url");
const PUBLIC_KEY = `whpk_${rawPublicKey.toString("base64")}`;

const BODY = JSON.stringify({ id: "evt_1", type: "webhook.test", agencyId: "agency_1", tenantId: "", sessionId: "", test: { note: "hé" } });

function now(): number {
  return Math.floor(Date.now() / 1000);
}

function hmacSignature(key: Buffer, id: string, timestamp: number, body: string | Buffer): string {
  const mac = createHmac("sha256", key).update(`${id}.${timestamp}.`).update(body).digest("base64");
  return `v1,${mac}`;
}

function ed25519Signature(id: string, timestamp: number, body: string | Buffer): string {
  const content = Buffer.concat([Buffer.from(`${id}.${timestamp}.`), Buffer.from(body)]);
  return `v1a,${sign(null, content, privateKey).toString("base64")}`;
}

/** Headers as the engine sends them: one `v1` per secret, then `v1a`. */
function signedHeaders(secrets: string[], body = BODY, timestamp = now(), id = "evt_1"): Record<string, string> {
  const signatures = secrets.map((secret) => hmacSignature(webhookHmacKey(secret), id, timestamp, body));
  signatures.push(ed25519Signature(id, timestamp, body));
  return { "webhook-id": id, "webhook-timestamp": String(timestamp), "webhook-signature": signatures.join(" ") };
}

describe("verifyWebhook (HMAC v1)", () => {
  const whsec = `whsec_${Buffer.alloc(32, 7).toString("base64")}`;

  test("accepts a whsec_ secret, with or without base64 padding", () => {
    const event = verifyWebhook(whsec, signedHeaders([whsec]), BODY);
    assert.equal(event.id, "evt_1");
    assert.equal(event.test?.note, "hé");
    const unpadded = whsec.replace(/=+$/, "");
    assert.notEqual(unpadded, whsec);
    assert.deepEqual(webhookHmacKey(unpadded), webhookHmacKey(whsec));
    assert.equal(verifyWebhook(unpadded, signedHeaders([whsec]), BODY).id, "evt_1");
  });

  test("uses any other secret as its UTF-8 bytes", () => {
    const plain = "not base64 at all: ünïcødé — 32+ characters long";
    assert.deepEqual(webhookHmacKey(plain), Buffer.from(plain, "utf8"));
    assert.equal(verifyWebhook(plain, signedHeaders([plain]), BODY).type, "webhook.test");
    // A plain secret that happens to be valid base64 is still used as its UTF-8 bytes.
    const base64Looking = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=";
    assert.equal(verifyWebhook(base64Looking, signedHeaders([base64Looking]), BODY).id, "evt_1");
    assert.throws(() => verifyWebhook(`whsec_${base64Looking}`, signedHeaders([base64Looking]), BODY), WebhookVerificationError);
  });

  test("accepts any one matching v1 (secret rotation) and any body type", () => {
    const headers = signedHeaders(["an-old-secret-that-is-32-characters-long", whsec]);
    for (const body of [BODY, Buffer.from(BODY), new Uint8Array(Buffer.from(BODY)), new Uint8Array(Buffer.from(BODY)).buffer]) {
      assert.equal(verifyWebhook(whsec, headers, body).id, "evt_1");
    }
  });

  test("rejects what is not a genuine, fresh delivery", () => {
    const headers = signedHeaders([whsec]);
    const rejects = (what: string, call: () => unknown): void => {
      assert.throws(call, WebhookVerificationError, what);
    };
    rejects("tampered body", () => verifyWebhook(whsec, headers, BODY.replace("agency_1", "agency_2")));
    rejects("wrong secret", () => verifyWebhook(`whsec_${Buffer.alloc(32, 8).toString("base64")}`, headers, BODY));
    rejects("no v1 at all", () =>
      verifyWebhook(whsec, { ...headers, "webhook-signature": ed25519Signature("evt_1", Number(headers["webhook-timestamp"]), BODY) }, BODY),
    );
    rejects("missing header", () => verifyWebhook(whsec, { ...headers, "webhook-id": undefined }, BODY));
    rejects("stale", () => verifyWebhook(whsec, signedHeaders([whsec], BODY, now() - 600), BODY));
    rejects("from the future", () => verifyWebhook(whsec, signedHeaders([whsec], BODY, now() + 600), BODY));
    rejects("signed, but not an event", () => verifyWebhook(whsec, signedHeaders([whsec], "[1,2]"), "[1,2]"));
    rejects("signed, but not JSON", () => verifyWebhook(whsec, signedHeaders([whsec], "hello"), "hello"));
    // Header names are case-insensitive.
    const upper = Object.fromEntries(Object.entries(headers).map(([name, value]) => [name.toUpperCase(), value]));
    assert.equal(verifyWebhook(whsec, upper, BODY).id, "evt_1");
  });

  test("derives the HMAC key exactly as the engine does", { skip: !existsSync(PYTHON) && "no engine .venv" }, () => {
    const secrets = [
      `whsec_${Buffer.alloc(24, 3).toString("base64")}`,
      `whsec_${Buffer.alloc(32, 9).toString("base64").replace(/=+$/, "")}`,
      "whsec_",
      "very-long-secret-string-min-32-chars",
      "ünïcødé secret — with spaces and symbols!?",
    ];
    const script =
      "import json, sys\nfrom engine.webhooks.signing import hmac_key_of\n" +
      "print(json.dumps([hmac_key_of(s).hex() for s in json.load(sys.stdin)]))";
    const result = spawnSync(PYTHON, ["-c", script], { cwd: REPO_ROOT, input: JSON.stringify(secrets), encoding: "utf8" });
    assert.equal(result.status, 0, result.stderr);
    const engineKeys = JSON.parse(result.stdout) as string[];
    assert.deepEqual(
      secrets.map((secret) => webhookHmacKey(secret).toString("hex")),
      engineKeys,
    );
  });
});

describe("verifyWebhookEd25519 (v1a)", () => {
  test("accepts the engine key's signature, as whpk_ or as a KeyObject", () => {
    const headers = signedHeaders(["some-secret-that-is-at-least-32-chars"]);
    assert.equal(verifyWebhookEd25519(PUBLIC_KEY, headers, BODY).id, "evt_1");
    assert.equal(verifyWebhookEd25519(ed25519PublicKey(PUBLIC_KEY), headers, Buffer.from(BODY)).id, "evt_1");
    assert.equal(verifyWebhookEd25519(publicKeyObject, new Headers(headers), BODY).id, "evt_1");
  });

  test("checks the timestamp against a tolerance", () => {
    const sent = now() - 120;
    const headers = signedHeaders([], BODY, sent);
    assert.equal(verifyWebhookEd25519(PUBLIC_KEY, headers, BODY).id, "evt_1");
    assert.throws(() => verifyWebhookEd25519(PUBLIC_KEY, headers, BODY, { toleranceSeconds: 60 }), WebhookVerificationError);
    assert.equal(verifyWebhookEd25519(PUBLIC_KEY, headers, BODY, { now: new Date(sent * 1000) }).id, "evt_1");
    assert.throws(
      () => verifyWebhookEd25519(PUBLIC_KEY, headers, BODY, { now: new Date((sent - 301) * 1000) }),
      /too new/,
    );
    assert.throws(() => verifyWebhookEd25519(PUBLIC_KEY, { ...headers, "webhook-timestamp": "12e3" }, BODY), WebhookVerificationError);
  });

  test("rejects tampering, other keys and HMAC-only headers", () => {
    const headers = signedHeaders(["some-secret-that-is-at-least-32-chars"]);
    assert.throws(() => verifyWebhookEd25519(PUBLIC_KEY, headers, `${BODY} `), WebhookVerificationError);
    assert.throws(() => verifyWebhookEd25519(PUBLIC_KEY, { ...headers, "webhook-id": "evt_2" }, BODY), WebhookVerificationError);
    const other = generateKeyPairSync("ed25519").publicKey;
    assert.throws(() => verifyWebhookEd25519(other, headers, BODY), WebhookVerificationError);
    const hmacOnly = (headers["webhook-signature"] ?? "").split(" ").filter((entry) => entry.startsWith("v1,")).join(" ");
    assert.throws(() => verifyWebhookEd25519(PUBLIC_KEY, { ...headers, "webhook-signature": hmacOnly }, BODY), WebhookVerificationError);
    assert.throws(
      () => verifyWebhookEd25519(PUBLIC_KEY, { ...headers, "webhook-signature": "v1a,not-base64!! v1a,AAAA" }, BODY),
      WebhookVerificationError,
    );
  });

  test("refuses a malformed public key", () => {
    assert.throws(() => ed25519PublicKey("whpk_AAAA"), /32 bytes/);
    assert.throws(() => ed25519PublicKey("whpk_not base64!"), TypeError);
  });
});
