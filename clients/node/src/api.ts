/**
 * The dashboard-facing operations, written once for both transports. `EngineApi` and
 * `RegistrationApi` build each request (lowerCamelCase fields, as in the JSON API) and unwrap
 * each response; a subclass only says how one operation travels (`invoke`).
 */

import type {
  AgenciesPage,
  ConversationsPage,
  DashboardConfig,
  DeliveriesPage,
  Delivery,
  DeliveryStatus,
  DeliveryStatusInput,
  Message,
  MessagesPage,
  PageOptions,
  Registration,
  RotatedApiKey,
  Session,
  SessionQr,
  SessionStatus,
  SessionStatusInput,
  SessionsPage,
  TenantOption,
  WebhookSigningKey,
} from "./types.js";

type Service = "SessionsService" | "WebhookService" | "RegistryService";
type Verb = "GET" | "POST" | "PATCH" | "DELETE";

export interface Operation {
  readonly service: Service;
  readonly verb: Verb;
  /** The REST route; `{field}` is a request field (JSON name) taken into the path. */
  readonly path: string;
  /** The other request fields go in a JSON body (`body: "*"`), else in the query string. */
  readonly body: boolean;
  /** Called without credentials. */
  readonly public: boolean;
}

function op(service: Service, verb: Verb, path: string, extra: { body?: boolean; public?: boolean } = {}): Operation {
  return { service, verb, path, body: extra.body ?? false, public: extra.public ?? false };
}

/** Every RPC the clients call, with its `google.api.http` route (checked against docs/openapi.json by the tests). */
export const OPERATIONS = {
  ListSessions: op("SessionsService", "GET", "/api/v1/sessions"),
  CreateSession: op("SessionsService", "POST", "/api/v1/sessions", { body: true }),
  GetSession: op("SessionsService", "GET", "/api/v1/sessions/{sessionId}"),
  DeleteSession: op("SessionsService", "DELETE", "/api/v1/sessions/{sessionId}"),
  StartSession: op("SessionsService", "POST", "/api/v1/sessions/{sessionId}/start", { body: true }),
  StopSession: op("SessionsService", "POST", "/api/v1/sessions/{sessionId}/stop", { body: true }),
  LogoutSession: op("SessionsService", "POST", "/api/v1/sessions/{sessionId}/logout", { body: true }),
  GetSessionQr: op("SessionsService", "GET", "/api/v1/sessions/{sessionId}/qr"),
  SendMessage: op("SessionsService", "POST", "/api/v1/sessions/{sessionId}/messages", { body: true }),
  ListConversations: op("SessionsService", "GET", "/api/v1/conversations"),
  ListMessages: op("SessionsService", "GET", "/api/v1/conversations/{conversationId}/messages"),
  SimulateInboundMessage: op("SessionsService", "POST", "/api/v1/sessions/{sessionId}/simulate-inbound", { body: true }),
  GetWebhookSigningKey: op("WebhookService", "GET", "/api/v1/webhooks/signing-key", { public: true }),
  ListDeliveries: op("WebhookService", "GET", "/api/v1/webhooks/deliveries"),
  GetDelivery: op("WebhookService", "GET", "/api/v1/webhooks/deliveries/{deliveryId}"),
  RedeliverWebhook: op("WebhookService", "POST", "/api/v1/webhooks/deliveries/{deliveryId}/redeliver", { body: true }),
  RedeliverFailedWebhooks: op("WebhookService", "POST", "/api/v1/webhooks/deliveries/redeliver-failed", { body: true }),
  SendTestWebhook: op("WebhookService", "POST", "/api/v1/webhooks/test", { body: true }),
  RegisterDashboard: op("RegistryService", "POST", "/v1/internal/dashboard/register", { body: true }),
  GetDashboardConfig: op("RegistryService", "GET", "/v1/internal/dashboard/config"),
  UpdateDashboardConfig: op("RegistryService", "PATCH", "/v1/internal/dashboard/config", { body: true }),
  ListAgencies: op("RegistryService", "GET", "/v1/internal/dashboard/agencies"),
  RotateApiKey: op("RegistryService", "POST", "/v1/internal/dashboard/rotate-key", { body: true }),
} as const satisfies Record<string, Operation>;

export type OperationName = keyof typeof OPERATIONS;

/** A request or response object in JSON form. */
export type JsonObject = Record<string, unknown>;

/** Both transports implement this: send one operation, answer its response object. */
export interface Invoker {
  invoke(operation: OperationName, request: JsonObject): Promise<JsonObject>;
}

/** The request without its undefined fields (so proto3 `optional` fields stay unset). */
function defined(fields: JsonObject): JsonObject {
  return Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined));
}

/** `SESSION_STATUS_WORKING` for `WORKING` (or for itself). */
export function sessionStatus(status: SessionStatusInput): SessionStatus {
  return (status.startsWith("SESSION_STATUS_") ? status : `SESSION_STATUS_${status}`) as SessionStatus;
}

/** `DELIVERY_STATUS_FAILED` for `FAILED` (or for itself). */
export function deliveryStatus(status: DeliveryStatusInput): DeliveryStatus {
  return (status.startsWith("DELIVERY_STATUS_") ? status : `DELIVERY_STATUS_${status}`) as DeliveryStatus;
}

export interface CreateSessionInput {
  tenantId: string;
  name?: string;
  /** `sandbox`, `waha`, ...; empty: the engine's default provider. */
  provider?: string;
  metadata?: Record<string, string>;
}

export interface ListSessionsInput extends PageOptions {
  /** Only this tenant's sessions. */
  tenantId?: string;
  /** Only sessions in this status (`WORKING` or `SESSION_STATUS_WORKING`). */
  status?: SessionStatusInput;
}

export interface ListConversationsInput extends PageOptions {
  tenantId?: string;
  sessionId?: string;
}

export interface ListMessagesInput extends PageOptions {
  tenantId?: string;
}

export interface SendMessageInput extends TenantOption {
  /** Recipient phone number or chat id. */
  to: string;
  text: string;
}

export interface SimulateInboundInput extends TenantOption {
  /** Sender phone number or chat id. */
  from: string;
  text: string;
}

export interface ListDeliveriesInput extends PageOptions {
  status?: DeliveryStatusInput;
  /** `message.received`, `message.status`, `session.status` or `webhook.test`. */
  eventType?: string;
  /** Only deliveries created at or after this time (RFC 3339). */
  since?: string;
}

export interface WaitForStatusOptions extends TenantOption {
  /** Give up after this long (default 30 000 ms). */
  timeoutMs?: number;
  /** Poll this often (default 200 ms). */
  intervalMs?: number;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The SessionsService and the dashboard side of the WebhookService. Every call acts for
 * `agencyId` (empty: the API key's own agency; with the engine's master key, name one).
 */
export abstract class EngineApi {
  readonly agencyId: string;

  protected constructor(agencyId: string | undefined) {
    this.agencyId = agencyId ?? "";
  }

  protected abstract invoke(operation: OperationName, request: JsonObject): Promise<JsonObject>;

  private call(operation: OperationName, fields: JsonObject): Promise<JsonObject> {
    const scope = this.agencyId ? { agencyId: this.agencyId } : {};
    return this.invoke(operation, defined({ ...scope, ...fields }));
  }

  private async session(operation: OperationName, sessionId: string, options?: TenantOption): Promise<Session> {
    const response = await this.call(operation, { sessionId, tenantId: options?.tenantId });
    return response["session"] as Session;
  }

  /** ListSessions: one page of the agency's sessions, newest first. */
  async listSessions(input: ListSessionsInput = {}): Promise<SessionsPage> {
    const { status, ...rest } = input;
    const response = await this.call("ListSessions", { ...rest, status: status && sessionStatus(status) });
    return response as unknown as SessionsPage;
  }

  /** CreateSession: a new STOPPED session for a tenant. */
  async createSession(input: CreateSessionInput): Promise<Session> {
    const response = await this.call("CreateSession", { ...input });
    return response["session"] as Session;
  }

  /** GetSession. */
  getSession(sessionId: string, options?: TenantOption): Promise<Session> {
    return this.session("GetSession", sessionId, options);
  }

  /** StartSession: STOPPED -> STARTING -> SCAN_QR_CODE -> WORKING. */
  startSession(sessionId: string, options?: TenantOption): Promise<Session> {
    return this.session("StartSession", sessionId, options);
  }

  /** StopSession: the session stays paired. */
  stopSession(sessionId: string, options?: TenantOption): Promise<Session> {
    return this.session("StopSession", sessionId, options);
  }

  /** LogoutSession: the session must be paired again. */
  logoutSession(sessionId: string, options?: TenantOption): Promise<Session> {
    return this.session("LogoutSession", sessionId, options);
  }

  /** DeleteSession: stopped at the provider and deleted; its history is kept. */
  deleteSession(sessionId: string, options?: TenantOption): Promise<Session> {
    return this.session("DeleteSession", sessionId, options);
  }

  /** GetSessionQr: the pairing QR code, while the session is SCAN_QR_CODE. */
  async getSessionQr(sessionId: string, options?: TenantOption): Promise<SessionQr> {
    const response = await this.call("GetSessionQr", { sessionId, tenantId: options?.tenantId });
    return response as unknown as SessionQr;
  }

  /** SendMessage from a WORKING session. */
  async sendMessage(sessionId: string, input: SendMessageInput): Promise<Message> {
    const response = await this.call("SendMessage", { ...input, sessionId });
    return response["message"] as Message;
  }

  /** SimulateInboundMessage: the sandbox provider receives a message (sandbox sessions only). */
  async simulateInboundMessage(sessionId: string, input: SimulateInboundInput): Promise<Message> {
    const response = await this.call("SimulateInboundMessage", { ...input, sessionId });
    return response["message"] as Message;
  }

  /** ListConversations: one page, newest first. */
  async listConversations(input: ListConversationsInput = {}): Promise<ConversationsPage> {
    return (await this.call("ListConversations", { ...input })) as unknown as ConversationsPage;
  }

  /** ListMessages: one page of a conversation's messages, newest first. */
  async listMessages(conversationId: string, input: ListMessagesInput = {}): Promise<MessagesPage> {
    return (await this.call("ListMessages", { ...input, conversationId })) as unknown as MessagesPage;
  }

  /** GetWebhookSigningKey: the engine's Ed25519 public key for `verifyWebhookEd25519` (no credentials needed). */
  async getWebhookSigningKey(): Promise<WebhookSigningKey> {
    return (await this.invoke("GetWebhookSigningKey", {})) as unknown as WebhookSigningKey;
  }

  /** ListDeliveries: one page of the webhooks sent (or to be sent) to the dashboard. */
  async listDeliveries(input: ListDeliveriesInput = {}): Promise<DeliveriesPage> {
    const { status, ...rest } = input;
    const response = await this.call("ListDeliveries", { ...rest, status: status && deliveryStatus(status) });
    return response as unknown as DeliveriesPage;
  }

  /** GetDelivery: one delivery with its attempts. */
  async getDelivery(deliveryId: string): Promise<Delivery> {
    return (await this.call("GetDelivery", { deliveryId }))["delivery"] as Delivery;
  }

  /** RedeliverWebhook: send a delivered or failed webhook again, with the same event id. */
  async redeliverWebhook(deliveryId: string): Promise<Delivery> {
    return (await this.call("RedeliverWebhook", { deliveryId }))["delivery"] as Delivery;
  }

  /** RedeliverFailedWebhooks: send every FAILED delivery (created since `since`, RFC 3339) again; how many. */
  async redeliverFailedWebhooks(input: { since?: string } = {}): Promise<number> {
    return Number((await this.call("RedeliverFailedWebhooks", { since: input.since }))["redelivered"] ?? 0);
  }

  /** SendTestWebhook: a signed `webhook.test` event to the dashboard now; the delivery carries the attempt. */
  async sendTestWebhook(input: { note?: string } = {}): Promise<Delivery> {
    return (await this.call("SendTestWebhook", { note: input.note }))["delivery"] as Delivery;
  }

  /** Poll GetSession until the session is in `status`; rejects after `timeoutMs`. */
  async waitForStatus(sessionId: string, status: SessionStatusInput, options: WaitForStatusOptions = {}): Promise<Session> {
    const wanted = sessionStatus(status);
    const deadline = Date.now() + (options.timeoutMs ?? 30_000);
    for (;;) {
      const session = await this.getSession(sessionId, { tenantId: options.tenantId });
      if (session.status === wanted) return session;
      if (Date.now() >= deadline) {
        const error = new Error(`session ${sessionId} is ${session.status}, not ${wanted}, after ${options.timeoutMs ?? 30_000} ms`);
        error.name = "TimeoutError";
        throw error;
      }
      await sleep(options.intervalMs ?? 200);
    }
  }
}

export interface RegisterDashboardInput {
  /** Letters, digits, `_` and `-`; 1 to 64 characters. */
  agencyId: string;
  dashboardName: string;
  /** Absolute http(s) URL that receives the webhooks. */
  dashboardUrl: string;
  /** At least 32 characters; `whsec_` + base64 of random bytes is best (see `verifyWebhook`). */
  webhookSecret: string;
}

export interface UpdateDashboardConfigInput {
  /** Whose configuration; with an API key, empty means the key's own agency. */
  agencyId?: string;
  /** Only the fields given change. */
  dashboardName?: string;
  dashboardUrl?: string;
  webhookSecret?: string;
}

export interface RotateApiKeyInput {
  agencyId?: string;
  /** How long the previous key keeps working: default 86 400 s, at most 604 800 s; 0 revokes it at once. */
  gracePeriodSeconds?: number;
}

/** The RegistryService: with the pre-shared key, or (config and rotation) with a dashboard's API key. */
export abstract class RegistrationApi {
  protected abstract invoke(operation: OperationName, request: JsonObject): Promise<JsonObject>;

  /** RegisterDashboard: the API key in the result is shown only this once. */
  async registerDashboard(input: RegisterDashboardInput): Promise<Registration> {
    return (await this.invoke("RegisterDashboard", defined({ ...input }))) as unknown as Registration;
  }

  /** GetDashboardConfig (never the webhook secret). */
  async getDashboardConfig(agencyId?: string): Promise<DashboardConfig> {
    return (await this.invoke("GetDashboardConfig", defined({ agencyId })))["config"] as DashboardConfig;
  }

  /** UpdateDashboardConfig: only the fields given change. */
  async updateDashboardConfig(input: UpdateDashboardConfigInput): Promise<DashboardConfig> {
    return (await this.invoke("UpdateDashboardConfig", defined({ ...input })))["config"] as DashboardConfig;
  }

  /** ListAgencies: one page of every registered agency (PSK only). */
  async listAgencies(input: PageOptions = {}): Promise<AgenciesPage> {
    return (await this.invoke("ListAgencies", defined({ ...input }))) as unknown as AgenciesPage;
  }

  /** RotateApiKey: a new key; the previous one keeps working for the grace period. */
  async rotateApiKey(input: RotateApiKeyInput = {}): Promise<RotatedApiKey> {
    const { gracePeriodSeconds, ...rest } = input;
    const request = defined({ ...rest, gracePeriodSeconds: gracePeriodSeconds === undefined ? undefined : String(gracePeriodSeconds) });
    return (await this.invoke("RotateApiKey", request)) as unknown as RotatedApiKey;
  }
}

/**
 * Every item of every page: `for await (const s of paginate((pageToken) => client.listSessions({pageToken}), (p) => p.sessions))`.
 * A page is fetched when the previous one is used up.
 */
export async function* paginate<P extends { nextPageToken: string }, T>(
  fetchPage: (pageToken: string) => Promise<P>,
  items: (page: P) => T[],
): AsyncGenerator<T, void, undefined> {
  let token = "";
  do {
    const page = await fetchPage(token);
    yield* items(page);
    token = page.nextPageToken;
  } while (token);
}
