/** The REST clients: the global `fetch` against the engine's HTTP/JSON routes (docs/openapi.json). */

import { EngineApi, OPERATIONS, RegistrationApi, type JsonObject, type OperationName } from "./api.js";
import { Code, EngineError, codeOfHttpStatus, httpStatusOf, type ErrorDetail } from "./errors.js";

export interface RestClientOptions {
  /** The engine's REST base URL, e.g. `http://127.0.0.1:8080` (a path prefix is kept). */
  baseUrl: string;
  /** Abort each request after this many milliseconds (default 30 000). */
  timeoutMs?: number;
  /** Another `fetch` (default `globalThis.fetch`). */
  fetch?: typeof fetch;
  /** Extra headers on every request. */
  headers?: Record<string, string>;
  /**
   * Extra `fetch` options on every request. The default `{cache: "no-store"}` keeps Next.js
   * from caching the engine's answers; pass e.g. `{next: {revalidate: 10}}` to opt in.
   */
  init?: RequestInit & Record<string, unknown>;
}

/** A request id for `x-request-id` (browsers offer `randomUUID` only in secure contexts). */
function randomId(): string {
  const webCrypto = globalThis.crypto as typeof globalThis.crypto | undefined;
  if (typeof webCrypto?.randomUUID === "function") return webCrypto.randomUUID();
  return `req-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 12)}`;
}

function queryString(fields: JsonObject): string {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined || value === null || value === "") continue;
    if (Array.isArray(value)) {
      for (const item of value) query.append(key, String(item));
    } else if (typeof value === "object") {
      for (const [inner, innerValue] of Object.entries(value as JsonObject)) {
        if (innerValue !== undefined && innerValue !== null && innerValue !== "") query.append(`${key}.${inner}`, String(innerValue));
      }
    } else {
      query.append(key, String(value));
    }
  }
  const text = query.toString();
  return text ? `?${text}` : "";
}

function isErrorBody(value: unknown): value is { code: number; message?: string; details?: ErrorDetail[] } {
  return typeof value === "object" && value !== null && typeof (value as { code?: unknown }).code === "number";
}

/** Sends one operation as an HTTP request with fixed credential headers. */
class RestTransport {
  private readonly baseUrl: string;
  private readonly timeoutMs: number;
  private readonly fetch: typeof fetch;

  constructor(
    private readonly options: RestClientOptions,
    private readonly auth: Record<string, string>,
  ) {
    if (!options.baseUrl) throw new TypeError("a REST client needs a baseUrl");
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  }

  async invoke(operation: OperationName, request: JsonObject): Promise<JsonObject> {
    const { verb, path, body, public: isPublic } = OPERATIONS[operation];
    const rest: JsonObject = { ...request };
    const requestId = randomId();
    let missing: string | undefined;
    const route = path.replace(/\{(\w+)\}/g, (_match, name: string) => {
      const value = rest[name];
      delete rest[name];
      if (value === undefined || value === null || value === "") missing = name;
      return encodeURIComponent(String(value ?? ""));
    });
    if (missing !== undefined) {
      throw new EngineError({
        status: 400,
        code: Code.INVALID_ARGUMENT,
        message: `${missing} is required`,
        details: [
          {
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            fieldViolations: [{ field: missing, description: "is required" }],
          },
        ],
        requestId,
        transport: "rest",
      });
    }

    const headers: Record<string, string> = {
      accept: "application/json",
      "x-request-id": requestId,
      ...this.options.headers,
      ...(isPublic ? {} : this.auth),
    };
    let url = `${this.baseUrl}${route}`;
    let payload: string | undefined;
    if (body) {
      headers["content-type"] = "application/json";
      payload = JSON.stringify(rest);
    } else {
      url += queryString(rest);
    }

    const timeout = AbortSignal.timeout(this.timeoutMs);
    const given = this.options.init?.signal;
    const signal = given && typeof AbortSignal.any === "function" ? AbortSignal.any([given, timeout]) : timeout;
    let response: Response;
    try {
      response = await this.fetch(url, {
        cache: "no-store",
        ...this.options.init,
        method: verb,
        headers,
        body: payload,
        signal,
      } as RequestInit);
    } catch (error) {
      const cancelled = given?.aborted === true;
      const timedOut = !cancelled && timeout.aborted;
      const code = cancelled ? Code.CANCELLED : timedOut ? Code.DEADLINE_EXCEEDED : Code.UNAVAILABLE;
      const reason = error instanceof Error ? ((error.cause as Error | undefined)?.message ?? error.message) : String(error);
      throw new EngineError({
        status: httpStatusOf(code),
        code,
        message: cancelled
          ? `${verb} ${route} was cancelled`
          : timedOut
            ? `no answer from ${this.baseUrl} within ${this.timeoutMs} ms`
            : `${verb} ${route} failed: ${reason}`,
        requestId,
        transport: "rest",
        cause: error,
      });
    }

    const answeredId = response.headers.get("x-request-id") ?? requestId;
    const text = await response.text();
    let document: unknown;
    try {
      document = text ? JSON.parse(text) : {};
    } catch {
      document = undefined;
    }
    if (response.ok) {
      if (typeof document !== "object" || document === null) {
        throw new EngineError({
          status: response.status,
          code: Code.INTERNAL,
          message: `${verb} ${route} answered ${response.status} with a body that is not a JSON object`,
          requestId: answeredId,
          transport: "rest",
        });
      }
      return document as JsonObject;
    }
    if (isErrorBody(document)) {
      throw new EngineError({
        status: response.status,
        code: document.code,
        message: document.message ?? response.statusText,
        details: Array.isArray(document.details) ? document.details : [],
        requestId: answeredId,
        transport: "rest",
      });
    }
    throw new EngineError({
      status: response.status,
      code: codeOfHttpStatus(response.status),
      message: text.slice(0, 500) || response.statusText || `HTTP ${response.status}`,
      requestId: answeredId,
      transport: "rest",
    });
  }
}

export interface EngineRestClientOptions extends RestClientOptions {
  /** The dashboard's API key (or the engine's master key), sent as `X-API-Key`. Keep it on the server. */
  apiKey: string;
  /** Agency every call acts for; empty: the key's own agency. Needed with the master key. */
  agencyId?: string;
}

/** The same operations as `EngineGrpcClient`, over the REST API with `fetch`. */
export class EngineRestClient extends EngineApi {
  private readonly transport: RestTransport;

  constructor(options: EngineRestClientOptions) {
    super(options.agencyId);
    if (!options.apiKey) throw new TypeError("EngineRestClient needs an apiKey");
    this.transport = new RestTransport(options, { "x-api-key": options.apiKey });
  }

  protected invoke(operation: OperationName, request: JsonObject): Promise<JsonObject> {
    return this.transport.invoke(operation, request);
  }
}

export interface RegistrationRestClientOptions extends RestClientOptions {
  /** The pre-shared key, sent as `Authorization: PSK <psk>`. */
  psk?: string;
  /** Or a dashboard's own API key: its config and key rotation only. */
  apiKey?: string;
}

/** The same operations as `RegistrationGrpcClient`, over the REST API. */
export class RegistrationRestClient extends RegistrationApi {
  private readonly transport: RestTransport;

  constructor(options: RegistrationRestClientOptions) {
    super();
    let auth: Record<string, string>;
    if (options.psk) auth = { authorization: `PSK ${options.psk}` };
    else if (options.apiKey) auth = { "x-api-key": options.apiKey };
    else throw new TypeError("RegistrationRestClient needs a psk (or an apiKey)");
    this.transport = new RestTransport(options, auth);
  }

  protected invoke(operation: OperationName, request: JsonObject): Promise<JsonObject> {
    return this.transport.invoke(operation, request);
  }
}
