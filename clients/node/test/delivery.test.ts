/** Real webhook deliveries from a live engine to a local receiver, verified with both signatures. */

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";

import {
  EngineGrpcClient,
  EngineRestClient,
  RegistrationGrpcClient,
  WebhookVerificationError,
  verifyWebhook,
  verifyWebhookEd25519,
  type WebhookEvent,
} from "../src/index.js";
import { eventually, startEngine, uniqueId, type RunningEngine } from "./helpers.js";

interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** A dashboard's webhook endpoint: records every request and answers 204. */
function startReceiver(): Promise<{ server: Server; url: string; received: Received[] }> {
  const received: Received[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      received.push({ path: request.url ?? "", headers: request.headers, body: Buffer.concat(chunks) });
      response.writeHead(204).end();
    });
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      resolve({ server, url: `http://127.0.0.1:${port}`, received });
    });
  });
}

function expectRejected(verify: () => unknown, what: string): void {
  assert.throws(verify, WebhookVerificationError, what);
}

describe("webhook deliveries", () => {
  let engine: RunningEngine;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let registry: RegistrationGrpcClient;
  let publicKey: string;
  const closers: { close(): void }[] = [];

  before(async () => {
    [engine, receiver] = await Promise.all([startEngine(), startReceiver()]);
    registry = new RegistrationGrpcClient({ target: engine.target, psk: engine.psk });
    closers.push(registry);
  });

  after(async () => {
    for (const client of closers) client.close();
    receiver?.server.close();
    await engine?.stop();
  });

  function webhookFor(path: string, eventId: string): Promise<Received> {
    return eventually(
      () => receiver.received.find((request) => request.path === path && request.headers["webhook-id"] === eventId),
      `the webhook ${eventId} at ${path}`,
    );
  }

  /** Verify a received webhook both ways (and with a fetch `Headers`, as in a Next.js route handler). */
  function verifyBoth(secret: string, request: Received): WebhookEvent {
    const event = verifyWebhook(secret, request.headers, request.body);
    assert.deepEqual(verifyWebhookEd25519(publicKey, request.headers, request.body), event);
    const headers = new Headers();
    for (const [name, value] of Object.entries(request.headers)) if (typeof value === "string") headers.set(name, value);
    assert.deepEqual(verifyWebhook(secret, headers, request.body.toString("utf8")), event);
    assert.deepEqual(verifyWebhookEd25519(publicKey, headers, new Uint8Array(request.body)), event);
    assert.equal(event.id, request.headers["webhook-id"]);
    return event;
  }

  function assertTamperingRejected(secret: string, request: Received): void {
    const text = request.body.toString("utf8");
    const tampered = text.replace(/"agencyId":"[^"]*"/, '"agencyId":"someone_else"');
    assert.notEqual(tampered, text);
    expectRejected(() => verifyWebhook(secret, request.headers, tampered), "a tampered body fails the HMAC check");
    expectRejected(() => verifyWebhookEd25519(publicKey, request.headers, tampered), "a tampered body fails the Ed25519 check");
    expectRejected(
      () => verifyWebhook(secret, { ...request.headers, "webhook-id": "evt_other" }, request.body),
      "another event id fails",
    );
    expectRejected(
      () => verifyWebhookEd25519(publicKey, request.headers, request.body, { now: new Date(Date.now() + 3_600_000) }),
      "an hour later the timestamp is stale",
    );
  }

  test("signs every delivery for a whsec_ secret and for a plain secret", async () => {
    publicKey = (await new EngineRestClient({ baseUrl: engine.baseUrl, apiKey: "unused" }).getWebhookSigningKey()).publicKey;

    const whsecSecret = `whsec_${randomBytes(24).toString("base64")}`;
    const plainSecret = `plain secret, not base64: ünïcødé — ${randomBytes(8).toString("hex")}`;
    const dashboards = [
      { agencyId: uniqueId("agency_whsec"), secret: whsecSecret, path: "/hooks/whsec" },
      { agencyId: uniqueId("agency_plain"), secret: plainSecret, path: "/hooks/plain" },
    ];
    const keys: string[] = [];
    for (const dashboard of dashboards) {
      const registration = await registry.registerDashboard({
        agencyId: dashboard.agencyId,
        dashboardName: `Receiver ${dashboard.path}`,
        dashboardUrl: `${receiver.url}${dashboard.path}`,
        webhookSecret: dashboard.secret,
      });
      keys.push(registration.apiKey);
    }
    const [whsecKey, plainKey] = keys as [string, string];
    const whsecClient = new EngineGrpcClient({ target: engine.target, apiKey: whsecKey });
    closers.push(whsecClient);
    const plainClient = new EngineRestClient({ baseUrl: engine.baseUrl, apiKey: plainKey });

    // 1. A test webhook to each dashboard (one over gRPC, one over REST).
    const [whsecDelivery, plainDelivery] = [
      await whsecClient.sendTestWebhook({ note: "whsec" }),
      await plainClient.sendTestWebhook({ note: "plain" }),
    ];
    const whsecTest = await webhookFor("/hooks/whsec", whsecDelivery.eventId);
    const plainTest = await webhookFor("/hooks/plain", plainDelivery.eventId);
    const whsecEvent = verifyBoth(whsecSecret, whsecTest);
    assert.equal(whsecEvent.type, "webhook.test");
    assert.equal(whsecEvent.test?.note, "whsec");
    assert.equal(whsecEvent.agencyId, dashboards[0]?.agencyId);
    const plainEvent = verifyBoth(plainSecret, plainTest);
    assert.equal(plainEvent.test?.note, "plain");
    assertTamperingRejected(whsecSecret, whsecTest);
    assertTamperingRejected(plainSecret, plainTest);
    expectRejected(() => verifyWebhook(plainSecret, whsecTest.headers, whsecTest.body), "another dashboard's secret fails");
    expectRejected(
      () => verifyWebhook(`whsec_${randomBytes(24).toString("base64")}`, plainTest.headers, plainTest.body),
      "a wrong secret fails",
    );

    // The engine saw the 204; a redelivery arrives again with the same event id.
    const succeeded = await eventually(async () => {
      const delivery = await whsecClient.getDelivery(whsecDelivery.deliveryId);
      return delivery.status === "DELIVERY_STATUS_SUCCEEDED" ? delivery : undefined;
    }, "the test delivery to succeed");
    assert.equal(succeeded.attempts[0]?.responseStatus, 204);
    const before = receiver.received.length;
    await whsecClient.redeliverWebhook(whsecDelivery.deliveryId);
    const again = await eventually(
      () =>
        receiver.received
          .slice(before)
          .find((request) => request.headers["webhook-id"] === whsecDelivery.eventId),
      "the redelivery",
    );
    assert.deepEqual(verifyBoth(whsecSecret, again), whsecEvent);

    // 2. A message received on a session of each dashboard.
    for (const [client, dashboard] of [
      [whsecClient, dashboards[0]],
      [plainClient, dashboards[1]],
    ] as const) {
      assert.ok(dashboard);
      const tenantId = uniqueId("tenant");
      const session = await client.createSession({ tenantId, name: "Webhook test" });
      await client.startSession(session.sessionId);
      await client.waitForStatus(session.sessionId, "WORKING", { timeoutMs: 10_000, intervalMs: 50 });
      const message = await client.simulateInboundMessage(session.sessionId, { from: "15550004444", text: "Is this open today?" });

      const request = await eventually(
        () =>
          receiver.received.find((candidate) => {
            if (candidate.path !== dashboard.path) return false;
            const event = JSON.parse(candidate.body.toString("utf8")) as WebhookEvent;
            return event.type === "message.received" && event.messageReceived?.message?.messageId === message.messageId;
          }),
        `the message.received webhook of ${dashboard.path}`,
      );
      const event = verifyBoth(dashboard.secret, request);
      assert.equal(event.agencyId, dashboard.agencyId);
      assert.equal(event.tenantId, tenantId);
      assert.equal(event.sessionId, session.sessionId);
      assert.equal(event.messageReceived?.message?.text, "Is this open today?");
      assert.equal(event.messageReceived?.message?.direction, "MESSAGE_DIRECTION_INBOUND");
      assertTamperingRejected(dashboard.secret, request);

      // Session status changes were delivered (and signed) too.
      const statusChange = await eventually(
        () =>
          receiver.received.find((candidate) => {
            if (candidate.path !== dashboard.path) return false;
            const found = JSON.parse(candidate.body.toString("utf8")) as WebhookEvent;
            return found.type === "session.status" && found.sessionStatus?.session?.status === "SESSION_STATUS_WORKING" && found.sessionId === session.sessionId;
          }),
        "the session.status webhook",
      );
      assert.equal(verifyBoth(dashboard.secret, statusChange).sessionStatus?.session?.sessionId, session.sessionId);
    }
  });
});
