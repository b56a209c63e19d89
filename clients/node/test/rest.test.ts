/** The REST clients against a live engine, and their parity with the gRPC clients. */

import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";

import {
  Code,
  EngineError,
  EngineGrpcClient,
  EngineRestClient,
  RegistrationRestClient,
  type Session,
} from "../src/index.js";
import * as restOnly from "../src/rest-entry.js";
import { RFC3339, freePort, rejection, startEngine, uniqueId, type RunningEngine } from "./helpers.js";

describe("over REST", () => {
  let engine: RunningEngine;
  let registry: RegistrationRestClient;
  const grpcClients: EngineGrpcClient[] = [];

  before(async () => {
    engine = await startEngine();
    registry = new RegistrationRestClient({ baseUrl: engine.baseUrl, psk: engine.psk });
  });

  after(async () => {
    for (const client of grpcClients) client.close();
    await engine?.stop();
  });

  async function register(): Promise<{ agencyId: string; apiKey: string }> {
    const agencyId = uniqueId("agency");
    const registration = await registry.registerDashboard({
      agencyId,
      dashboardName: "REST dashboard",
      dashboardUrl: "http://127.0.0.1:9/hooks",
      webhookSecret: "a-plain-webhook-secret-of-40-characters!!",
    });
    assert.equal(registration.success, true);
    assert.equal(registration.agencyId, agencyId);
    return { agencyId, apiKey: registration.apiKey };
  }

  test("registers and configures a dashboard", async () => {
    const { agencyId, apiKey } = await register();
    const config = await registry.getDashboardConfig(agencyId);
    assert.equal(config.dashboardName, "REST dashboard");
    assert.equal(config.status, "DASHBOARD_STATUS_ACTIVE");
    const own = new RegistrationRestClient({ baseUrl: engine.baseUrl, apiKey });
    const moved = await own.updateDashboardConfig({ dashboardUrl: "http://127.0.0.1:9/other-hooks" });
    assert.equal(moved.dashboardUrl, "http://127.0.0.1:9/other-hooks");
    assert.equal(moved.dashboardName, "REST dashboard");
    const page = await registry.listAgencies({ pageSize: 500 });
    assert.ok(page.agencies.some((agency) => agency.agencyId === agencyId));
    const rotated = await own.rotateApiKey({ gracePeriodSeconds: 60 });
    assert.match(rotated.previousKeyExpireTime ?? "", RFC3339);
    // Both keys work during the grace period.
    for (const key of [apiKey, rotated.apiKey]) {
      await new EngineRestClient({ baseUrl: engine.baseUrl, apiKey: key }).listSessions();
    }
  });

  test("runs a session's whole life", async () => {
    const { agencyId, apiKey } = await register();
    // The REST-only entry point has the same client.
    const client = new restOnly.EngineRestClient({ baseUrl: `${engine.baseUrl}/`, apiKey });
    const tenantId = uniqueId("tenant");

    const created = await client.createSession({ tenantId, name: "Front desk", metadata: { branch: "south" } });
    assert.equal(created.agencyId, agencyId);
    assert.equal(created.status, "SESSION_STATUS_STOPPED");
    assert.deepEqual(created.metadata, { branch: "south" });
    const qrError = await rejection<EngineError>(client.getSessionQr(created.sessionId));
    assert.equal(qrError.code, Code.FAILED_PRECONDITION);
    assert.equal(qrError.status, 400);

    await client.startSession(created.sessionId);
    await client.waitForStatus(created.sessionId, "SESSION_STATUS_WORKING", { tenantId, timeoutMs: 10_000, intervalMs: 50 });
    const listed = await client.listSessions({ tenantId, status: "WORKING" });
    assert.deepEqual(
      listed.sessions.map((session) => session.sessionId),
      [created.sessionId],
    );

    const sent = await client.sendMessage(created.sessionId, { to: "+1 555 000 3333", text: "Hello over REST", tenantId });
    assert.equal(sent.direction, "MESSAGE_DIRECTION_OUTBOUND");
    const received = await client.simulateInboundMessage(created.sessionId, { from: "15550003333", text: "Hi back" });
    assert.equal(received.direction, "MESSAGE_DIRECTION_INBOUND");
    assert.equal(received.from, "15550003333@c.us");

    const conversations = await client.listConversations({ tenantId });
    assert.deepEqual(
      conversations.conversations.map((conversation) => [conversation.peer, conversation.messageCount]),
      [["15550003333@c.us", "2"]],
    );
    const messages = await client.listMessages(sent.conversationId, { tenantId });
    assert.deepEqual(
      messages.messages.map((message) => message.text),
      ["Hi back", "Hello over REST"],
    );

    // Let the sandbox's acks settle (sent, delivered, read) so that both reads see one state.
    const settled = Date.now() + 10_000;
    for (;;) {
      const listed = await client.listMessages(sent.conversationId, { tenantId });
      if (listed.messages.find((message) => message.messageId === sent.messageId)?.status === "MESSAGE_STATUS_READ") break;
      assert.ok(Date.now() < settled, "the sent message never reached READ");
      await new Promise((resolve) => setTimeout(resolve, 50));
    }

    // The same reads over gRPC give the very same objects.
    const grpcClient = new EngineGrpcClient({ target: engine.target, apiKey });
    grpcClients.push(grpcClient);
    const overRest: Session = await client.getSession(created.sessionId);
    assert.deepEqual(await grpcClient.getSession(created.sessionId), overRest);
    assert.deepEqual(await grpcClient.listMessages(sent.conversationId, { tenantId }), await client.listMessages(sent.conversationId, { tenantId }));
    assert.deepEqual(await grpcClient.listConversations({ tenantId }), await client.listConversations({ tenantId }));

    assert.equal((await client.stopSession(created.sessionId)).status, "SESSION_STATUS_STOPPED");
    await client.logoutSession(created.sessionId);
    await client.deleteSession(created.sessionId);
    const gone = await rejection<EngineError>(client.getSession(created.sessionId));
    assert.equal(gone.code, Code.NOT_FOUND);
    assert.equal(gone.status, 404);
  });

  test("reads webhook deliveries like gRPC does", async () => {
    const { apiKey } = await register();
    const client = new EngineRestClient({ baseUrl: engine.baseUrl, apiKey });
    const grpcClient = new EngineGrpcClient({ target: engine.target, apiKey });
    grpcClients.push(grpcClient);
    assert.deepEqual(await client.getWebhookSigningKey(), await grpcClient.getWebhookSigningKey());

    const delivery = await client.sendTestWebhook({ note: "from the REST test" });
    assert.equal(delivery.event?.test?.note, "from the REST test");
    const listed = await client.listDeliveries({ status: "DELIVERY_STATUS_PENDING", eventType: "webhook.test" });
    const viaGrpc = await grpcClient.getDelivery(delivery.deliveryId);
    const viaRest = await client.getDelivery(delivery.deliveryId);
    assert.equal(viaRest.eventId, delivery.eventId);
    assert.deepEqual(viaRest.event, viaGrpc.event);
    assert.ok(listed.deliveries.length <= 1);
  });

  test("maps failures to EngineError", async () => {
    const wrongKey = new EngineRestClient({ baseUrl: engine.baseUrl, apiKey: "wfe_not-a-key" });
    const unauthenticated = await rejection<EngineError>(wrongKey.listSessions());
    assert.ok(unauthenticated instanceof EngineError);
    assert.equal(unauthenticated.status, 401);
    assert.equal(unauthenticated.code, Code.UNAUTHENTICATED);
    assert.equal(unauthenticated.codeName, "UNAUTHENTICATED");
    assert.equal(unauthenticated.transport, "rest");
    assert.ok(unauthenticated.message);
    assert.ok(unauthenticated.requestId);

    const wrongPsk = new RegistrationRestClient({ baseUrl: engine.baseUrl, psk: "not-the-psk" });
    assert.equal((await rejection<EngineError>(wrongPsk.listAgencies())).status, 401);

    const invalid = await rejection<EngineError>(
      registry.registerDashboard({ agencyId: "no spaces allowed", dashboardName: "x", dashboardUrl: "not a url", webhookSecret: "short" }),
    );
    assert.equal(invalid.status, 400);
    assert.equal(invalid.code, Code.INVALID_ARGUMENT);
    assert.deepEqual(invalid.fieldViolations.map((violation) => violation.field).sort(), ["agencyId", "dashboardUrl", "webhookSecret"]);

    const { apiKey } = await register();
    const client = new EngineRestClient({ baseUrl: engine.baseUrl, apiKey });
    const denied = await rejection<EngineError>(new EngineRestClient({ baseUrl: engine.baseUrl, apiKey, agencyId: uniqueId("other") }).listSessions());
    assert.equal(denied.status, 403);
    assert.equal(denied.code, Code.PERMISSION_DENIED);

    const noId = await rejection<EngineError>(client.getSession(""));
    assert.equal(noId.code, Code.INVALID_ARGUMENT, "an empty path variable is refused before any request");

    // The same failure over gRPC has the same code, status and message.
    const grpcClient = new EngineGrpcClient({ target: engine.target, apiKey });
    grpcClients.push(grpcClient);
    const [overRest, overGrpc] = [
      await rejection<EngineError>(client.sendMessage("ses_nope", { to: "+15550001111", text: "x" })),
      await rejection<EngineError>(grpcClient.sendMessage("ses_nope", { to: "+15550001111", text: "x" })),
    ];
    assert.deepEqual([overRest.code, overRest.status, overRest.message], [overGrpc.code, overGrpc.status, overGrpc.message]);

    const closedPort = await freePort();
    const unreachable = await rejection<EngineError>(new EngineRestClient({ baseUrl: `http://127.0.0.1:${closedPort}`, apiKey }).listSessions());
    assert.equal(unreachable.code, Code.UNAVAILABLE);
    assert.equal(unreachable.status, 503);

    // A server that never answers: the call's deadline.
    const silent = createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    try {
      const { port } = silent.address() as AddressInfo;
      const slow = new EngineRestClient({ baseUrl: `http://127.0.0.1:${port}`, apiKey, timeoutMs: 300 });
      const timedOut = await rejection<EngineError>(slow.getSession("ses_1"));
      assert.equal(timedOut.code, Code.DEADLINE_EXCEEDED);
      assert.equal(timedOut.status, 504);
    } finally {
      silent.closeAllConnections();
      silent.close();
    }
  });
});
