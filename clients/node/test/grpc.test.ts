/** The gRPC clients against a live engine. */

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import {
  Code,
  EngineError,
  EngineGrpcClient,
  RegistrationGrpcClient,
  paginate,
  type Agency,
  type Message,
} from "../src/index.js";
import { RFC3339, rejection, startEngine, uniqueId, type RunningEngine } from "./helpers.js";

describe("over gRPC", () => {
  let engine: RunningEngine;
  let registry: RegistrationGrpcClient;
  const closers: { close(): void }[] = [];

  before(async () => {
    engine = await startEngine();
    registry = new RegistrationGrpcClient({ target: engine.target, psk: engine.psk });
    closers.push(registry);
  });

  after(async () => {
    for (const client of closers) client.close();
    await engine?.stop();
  });

  async function register(): Promise<{ agencyId: string; apiKey: string }> {
    const agencyId = uniqueId("agency");
    const registration = await registry.registerDashboard({
      agencyId,
      dashboardName: "gRPC dashboard",
      dashboardUrl: "http://127.0.0.1:9/hooks",
      webhookSecret: "a-plain-webhook-secret-of-40-characters!!",
    });
    return { agencyId, apiKey: registration.apiKey };
  }

  function engineClient(apiKey: string, agencyId?: string): EngineGrpcClient {
    const client = new EngineGrpcClient({ target: engine.target, apiKey, agencyId });
    closers.push(client);
    return client;
  }

  test("registers a dashboard and manages its configuration", async () => {
    const agencyId = uniqueId("agency");
    const registration = await registry.registerDashboard({
      agencyId,
      dashboardName: "My SaaS Platform",
      dashboardUrl: "http://127.0.0.1:9/hooks",
      webhookSecret: "very-long-secret-string-min-32-chars",
    });
    assert.deepEqual({ ...registration, apiKey: "" }, { success: true, apiKey: "", agencyId });
    assert.match(registration.apiKey, /^wfe_/);

    const config = await registry.getDashboardConfig(agencyId);
    assert.equal(config.agencyId, agencyId);
    assert.equal(config.dashboardName, "My SaaS Platform");
    assert.equal(config.webhookSecretSet, true);
    assert.equal(config.webhookSecretHint, "hars");
    assert.equal(config.status, "DASHBOARD_STATUS_ACTIVE");
    assert.match(config.createTime ?? "", RFC3339);
    assert.ok(config.rateLimit && config.rateLimit.burst > 0);

    const renamed = await registry.updateDashboardConfig({ agencyId, dashboardName: "Renamed" });
    assert.equal(renamed.dashboardName, "Renamed");
    assert.equal(renamed.dashboardUrl, "http://127.0.0.1:9/hooks", "only the given field changes");

    // The dashboard itself, with its own key: its configuration (no agencyId needed) and a key rotation.
    const own = new RegistrationGrpcClient({ target: engine.target, apiKey: registration.apiKey });
    closers.push(own);
    assert.equal((await own.getDashboardConfig()).dashboardName, "Renamed");
    const rotated = await own.rotateApiKey({ gracePeriodSeconds: 0 });
    assert.equal(rotated.agencyId, agencyId);
    assert.match(rotated.apiKey, /^wfe_/);
    assert.match(rotated.previousKeyExpireTime ?? "", RFC3339);
    const revoked = await rejection<EngineError>(engineClient(registration.apiKey).listSessions());
    assert.equal(revoked.code, Code.UNAUTHENTICATED);
    assert.deepEqual((await engineClient(rotated.apiKey).listSessions()).sessions, []);

    const agencies: Agency[] = [];
    for await (const agency of paginate((pageToken) => registry.listAgencies({ pageSize: 1, pageToken }), (page) => page.agencies)) {
      agencies.push(agency);
    }
    assert.ok(agencies.some((agency) => agency.agencyId === agencyId && agency.dashboardName === "Renamed"));
  });

  test("runs a session's whole life", async () => {
    const { agencyId, apiKey } = await register();
    const client = engineClient(apiKey);
    const tenantId = uniqueId("tenant");

    const created = await client.createSession({ tenantId, name: "Front desk", metadata: { branch: "north" } });
    assert.match(created.sessionId, /^ses_/);
    assert.equal(created.agencyId, agencyId, "the key's own agency is filled in");
    assert.equal(created.tenantId, tenantId);
    assert.equal(created.provider, "sandbox");
    assert.equal(created.status, "SESSION_STATUS_STOPPED");
    assert.deepEqual(created.metadata, { branch: "north" });
    assert.match(created.createTime ?? "", RFC3339);

    const qrError = await rejection<EngineError>(client.getSessionQr(created.sessionId));
    assert.equal(qrError.code, Code.FAILED_PRECONDITION, "no QR code while STOPPED");

    await client.startSession(created.sessionId, { tenantId });
    const working = await client.waitForStatus(created.sessionId, "WORKING", { timeoutMs: 10_000, intervalMs: 50 });
    assert.notEqual(working.accountId, "");
    const listed = await client.listSessions({ tenantId, status: "WORKING" });
    assert.deepEqual(
      listed.sessions.map((session) => session.sessionId),
      [created.sessionId],
    );
    assert.equal(listed.nextPageToken, "");

    const sent = await client.sendMessage(created.sessionId, { to: "+1 555 000 2222", text: "Hello from the engine" });
    assert.equal(sent.direction, "MESSAGE_DIRECTION_OUTBOUND");
    assert.equal(sent.text, "Hello from the engine");
    assert.equal(sent.to, "15550002222@c.us");
    const received = await client.simulateInboundMessage(created.sessionId, { from: "15550002222", text: "Hi! Is this open today?" });
    assert.equal(received.direction, "MESSAGE_DIRECTION_INBOUND");
    assert.equal(received.status, "MESSAGE_STATUS_RECEIVED");
    assert.equal(received.conversationId, sent.conversationId);

    const conversations = await client.listConversations({ tenantId, sessionId: created.sessionId });
    assert.equal(conversations.conversations.length, 1);
    const [conversation] = conversations.conversations;
    assert.equal(conversation?.peer, "15550002222@c.us");
    assert.equal(conversation?.messageCount, "2", "int64 as a string, as in the JSON API");
    assert.equal(conversation?.lastMessageText, "Hi! Is this open today?");

    const firstPage = await client.listMessages(sent.conversationId, { pageSize: 1 });
    assert.equal(firstPage.messages.length, 1);
    assert.notEqual(firstPage.nextPageToken, "");
    const messages: Message[] = [];
    for await (const message of paginate((pageToken) => client.listMessages(sent.conversationId, { pageSize: 1, pageToken }), (page) => page.messages)) {
      messages.push(message);
    }
    assert.deepEqual(
      messages.map((message) => message.messageId),
      [received.messageId, sent.messageId],
      "newest first",
    );

    assert.equal((await client.stopSession(created.sessionId)).status, "SESSION_STATUS_STOPPED");
    await client.logoutSession(created.sessionId);
    assert.equal((await client.getSession(created.sessionId)).accountId, "", "logged out: paired no more");
    const deleted = await client.deleteSession(created.sessionId);
    assert.equal(deleted.sessionId, created.sessionId);
    const gone = await rejection<EngineError>(client.getSession(created.sessionId));
    assert.equal(gone.code, Code.NOT_FOUND);
  });

  test("lists and reads webhook deliveries", async () => {
    const { apiKey } = await register();
    const client = engineClient(apiKey);
    const key = await client.getWebhookSigningKey();
    assert.equal(key.algorithm, "ed25519");
    assert.match(key.publicKey, /^whpk_[A-Za-z0-9+/]{43}=$/);

    const delivery = await client.sendTestWebhook({ note: "from the gRPC test" });
    assert.match(delivery.deliveryId, /^dlv_/);
    assert.equal(delivery.eventType, "webhook.test");
    assert.equal(delivery.event?.test?.note, "from the gRPC test");
    assert.equal(delivery.event?.id, delivery.eventId);

    const fetched = await client.getDelivery(delivery.deliveryId);
    assert.equal(fetched.eventId, delivery.eventId);
    const listed = await client.listDeliveries({ eventType: "webhook.test" });
    assert.ok(listed.deliveries.some((found) => found.deliveryId === delivery.deliveryId));
    const none = await client.listDeliveries({ status: "SUCCEEDED", eventType: "webhook.test" });
    assert.deepEqual(none.deliveries, [], "nobody listens on the dashboard's URL");

    const early = await rejection<EngineError>(client.redeliverWebhook(delivery.deliveryId));
    assert.equal(early.code, Code.FAILED_PRECONDITION, "only SUCCEEDED or FAILED deliveries are sent again");
    assert.equal(early.status, 400);
  });

  test("maps failures to EngineError", async () => {
    const wrongKey = engineClient("wfe_not-a-key");
    const unauthenticated = await rejection<EngineError>(wrongKey.listSessions());
    assert.ok(unauthenticated instanceof EngineError);
    assert.equal(unauthenticated.code, Code.UNAUTHENTICATED);
    assert.equal(unauthenticated.codeName, "UNAUTHENTICATED");
    assert.equal(unauthenticated.status, 401);
    assert.equal(unauthenticated.transport, "grpc");
    assert.ok(unauthenticated.requestId);

    const wrongPsk = new RegistrationGrpcClient({ target: engine.target, psk: "not-the-psk" });
    closers.push(wrongPsk);
    assert.equal((await rejection<EngineError>(wrongPsk.listAgencies())).code, Code.UNAUTHENTICATED);

    const invalid = await rejection<EngineError>(
      registry.registerDashboard({ agencyId: "no spaces allowed", dashboardName: "x", dashboardUrl: "not a url", webhookSecret: "short" }),
    );
    assert.equal(invalid.code, Code.INVALID_ARGUMENT);
    assert.equal(invalid.status, 400);
    assert.deepEqual(invalid.fieldViolations.map((violation) => violation.field).sort(), ["agencyId", "dashboardUrl", "webhookSecret"]);
    assert.ok(invalid.detail("BadRequest"), "the google.rpc details are unpacked");

    const { apiKey } = await register();
    const otherAgency = engineClient(apiKey, uniqueId("someone_else"));
    const denied = await rejection<EngineError>(otherAgency.listSessions());
    assert.equal(denied.code, Code.PERMISSION_DENIED);
    assert.equal(denied.status, 403);

    const missing = await rejection<EngineError>(engineClient(apiKey).getSession("ses_does_not_exist"));
    assert.equal(missing.code, Code.NOT_FOUND);
    assert.equal(missing.status, 404);

    const nobody = new EngineGrpcClient({ target: "127.0.0.1:1", apiKey, timeoutMs: 2_000 });
    closers.push(nobody);
    const unavailable = await rejection<EngineError>(nobody.listSessions());
    assert.ok(
      unavailable.code === Code.UNAVAILABLE || unavailable.code === Code.DEADLINE_EXCEEDED,
      `code ${unavailable.code}`,
    );
  });
});
