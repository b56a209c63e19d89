/** The clients' route table against the contract (docs/openapi.json, proto/), and the JSON conversions. */

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";

import { Code, EngineError, OPERATIONS, deliveryStatus, httpStatusOf, loadDefinitions, sessionStatus } from "../src/index.js";
import { durationToJson, timestampToJson } from "../src/protos.js";
import { REPO_ROOT } from "./helpers.js";

interface OpenApi {
  paths: Record<string, Record<string, { operationId?: string; requestBody?: unknown }>>;
}

describe("the contract", () => {
  test("every operation has the REST route docs/openapi.json gives it", () => {
    const document = JSON.parse(readFileSync(path.join(REPO_ROOT, "docs", "openapi.json"), "utf8")) as OpenApi;
    const routes = new Map<string, { verb: string; path: string; body: boolean }>();
    for (const [route, methods] of Object.entries(document.paths)) {
      for (const [verb, operation] of Object.entries(methods)) {
        if (operation.operationId) routes.set(operation.operationId, { verb: verb.toUpperCase(), path: route, body: operation.requestBody !== undefined });
      }
    }
    for (const [name, operation] of Object.entries(OPERATIONS)) {
      const route = routes.get(`${operation.service}_${name}`);
      assert.ok(route, `${operation.service}_${name} is in docs/openapi.json`);
      assert.deepEqual(
        { verb: operation.verb, path: operation.path, body: operation.body },
        { verb: route.verb, path: route.path, body: route.body },
        name,
      );
    }
  });

  test("every operation is an RPC of proto/workflow_engine/v1", () => {
    const { packageDefinition, root } = loadDefinitions();
    for (const [name, operation] of Object.entries(OPERATIONS)) {
      const service = packageDefinition[`workflow_engine.v1.${operation.service}`] as Record<string, { path: string }> | undefined;
      assert.equal(service?.[name]?.path, `/workflow_engine.v1.${operation.service}/${name}`);
      assert.ok(root.lookupType(`workflow_engine.v1.${name}Response`));
    }
  });

  test("timestamps and durations are written as protobuf JSON writes them", () => {
    assert.equal(timestampToJson({ seconds: "1767225600", nanos: 0 }), "2026-01-01T00:00:00Z");
    assert.equal(timestampToJson({ seconds: "1767225600", nanos: 250_000_000 }), "2026-01-01T00:00:00.250Z");
    assert.equal(timestampToJson({ seconds: "1767225600", nanos: 123_456_000 }), "2026-01-01T00:00:00.123456Z");
    assert.equal(timestampToJson({ seconds: "1767225600", nanos: 1 }), "2026-01-01T00:00:00.000000001Z");
    assert.equal(durationToJson({ seconds: "3", nanos: 500_000_000 }), "3.500s");
    assert.equal(durationToJson({ seconds: "0", nanos: 0 }), "0s");
    assert.equal(durationToJson({ seconds: "-1", nanos: -500_000_000 }), "-1.500s");
  });

  test("statuses are taken by short or full name", () => {
    assert.equal(sessionStatus("WORKING"), "SESSION_STATUS_WORKING");
    assert.equal(sessionStatus("SESSION_STATUS_SCAN_QR_CODE"), "SESSION_STATUS_SCAN_QR_CODE");
    assert.equal(deliveryStatus("FAILED"), "DELIVERY_STATUS_FAILED");
  });

  test("EngineError reads the google.rpc details", () => {
    const error = new EngineError({
      status: httpStatusOf(Code.RESOURCE_EXHAUSTED),
      code: Code.RESOURCE_EXHAUSTED,
      message: "slow down",
      details: [
        { "@type": "type.googleapis.com/google.rpc.RetryInfo", retryDelay: "1.500s" },
        { "@type": "type.googleapis.com/google.rpc.BadRequest", fieldViolations: [{ field: "to", description: "bad" }] },
      ],
      requestId: "req-1",
      transport: "rest",
    });
    assert.equal(error.status, 429);
    assert.equal(error.codeName, "RESOURCE_EXHAUSTED");
    assert.equal(error.retryAfterSeconds, 1.5);
    assert.deepEqual(error.fieldViolations, [{ field: "to", description: "bad" }]);
    assert.equal(String(error), "EngineError RESOURCE_EXHAUSTED: slow down (request id req-1)");
    assert.equal(httpStatusOf(Code.UNAUTHENTICATED), 401);
    assert.equal(httpStatusOf(Code.FAILED_PRECONDITION), 400);
  });
});
