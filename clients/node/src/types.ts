/**
 * The engine's messages as both clients return them: protobuf JSON (what the REST API
 * answers), lowerCamelCase. Enums are their full names (`SESSION_STATUS_WORKING`), int64
 * values are strings, bytes are base64 strings, timestamps are RFC 3339 strings. Unset
 * message fields (timestamps included) are absent; unset scalars, lists and maps are present
 * with their zero value.
 */

export type DashboardStatus =
  | "DASHBOARD_STATUS_UNSPECIFIED"
  | "DASHBOARD_STATUS_ACTIVE"
  | "DASHBOARD_STATUS_SUSPENDED"
  | "DASHBOARD_STATUS_WEBHOOKS_DISABLED";

export type SessionStatus =
  | "SESSION_STATUS_UNSPECIFIED"
  | "SESSION_STATUS_STOPPED"
  | "SESSION_STATUS_STARTING"
  | "SESSION_STATUS_SCAN_QR_CODE"
  | "SESSION_STATUS_WORKING"
  | "SESSION_STATUS_FAILED";

/** A session status as an argument: its full name or the part after `SESSION_STATUS_`. */
export type SessionStatusInput = SessionStatus | "STOPPED" | "STARTING" | "SCAN_QR_CODE" | "WORKING" | "FAILED";

export type MessageDirection = "MESSAGE_DIRECTION_UNSPECIFIED" | "MESSAGE_DIRECTION_INBOUND" | "MESSAGE_DIRECTION_OUTBOUND";

export type MessageStatus =
  | "MESSAGE_STATUS_UNSPECIFIED"
  | "MESSAGE_STATUS_PENDING"
  | "MESSAGE_STATUS_SENT"
  | "MESSAGE_STATUS_DELIVERED"
  | "MESSAGE_STATUS_READ"
  | "MESSAGE_STATUS_FAILED"
  | "MESSAGE_STATUS_RECEIVED";

export type DeliveryStatus =
  | "DELIVERY_STATUS_UNSPECIFIED"
  | "DELIVERY_STATUS_PENDING"
  | "DELIVERY_STATUS_SUCCEEDED"
  | "DELIVERY_STATUS_FAILED"
  | "DELIVERY_STATUS_HELD";

/** A delivery status as an argument: its full name or the part after `DELIVERY_STATUS_`. */
export type DeliveryStatusInput = DeliveryStatus | "PENDING" | "SUCCEEDED" | "FAILED" | "HELD";

export interface RateLimit {
  requestsPerSecond: number;
  burst: number;
}

/** A messaging session (one WhatsApp login) bound to one agency and tenant. */
export interface Session {
  sessionId: string;
  agencyId: string;
  tenantId: string;
  name: string;
  /** `sandbox`, `waha`, ... */
  provider: string;
  status: SessionStatus;
  metadata: Record<string, string>;
  createTime?: string;
  updateTime?: string;
  /** Phone number or account id once paired. */
  accountId: string;
}

/** All messages of one session with one peer. */
export interface Conversation {
  conversationId: string;
  agencyId: string;
  tenantId: string;
  sessionId: string;
  peer: string;
  lastMessageTime?: string;
  lastMessageText: string;
  /** int64, as a string. */
  messageCount: string;
}

export interface Message {
  messageId: string;
  conversationId: string;
  sessionId: string;
  agencyId: string;
  tenantId: string;
  direction: MessageDirection;
  from: string;
  to: string;
  text: string;
  status: MessageStatus;
  createTime?: string;
  updateTime?: string;
  providerMessageId: string;
}

/** A session's pairing QR code. */
export interface SessionQr {
  /** The raw value encoded in the QR code. */
  value: string;
  /** The QR code as a PNG image, base64 (`data:${mimeType};base64,${png}`). */
  png: string;
  mimeType: string;
}

/** The JSON body of every webhook: exactly one of the data fields is present. */
export interface WebhookEvent {
  /** `evt_...`, also the `webhook-id` header: deduplicate on it. */
  id: string;
  /** `message.received`, `message.status`, `session.status` or `webhook.test`. */
  type: string;
  timestamp?: string;
  agencyId: string;
  tenantId: string;
  sessionId: string;
  messageReceived?: { message?: Message };
  messageStatus?: { message?: Message; previousStatus: MessageStatus };
  sessionStatus?: { session?: Session; previousStatus: SessionStatus };
  test?: { note: string };
}

export interface DeliveryAttempt {
  attemptNumber: number;
  attemptTime?: string;
  /** HTTP status; 0 when no response arrived. */
  responseStatus: number;
  responseBodyExcerpt: string;
  /** int64, as a string. */
  durationMs: string;
  error: string;
}

/** A webhook event on its way to one dashboard. */
export interface Delivery {
  deliveryId: string;
  agencyId: string;
  eventId: string;
  eventType: string;
  status: DeliveryStatus;
  attemptCount: number;
  createTime?: string;
  nextAttemptTime?: string;
  lastAttemptTime?: string;
  attempts: DeliveryAttempt[];
  event?: WebhookEvent;
}

export interface WebhookSigningKey {
  /** `whpk_` + base64 of the raw 32-byte Ed25519 key: pass it to `verifyWebhookEd25519`. */
  publicKey: string;
  /** Always `ed25519`. */
  algorithm: string;
}

/** Result of a registration: the API key is shown only this once. */
export interface Registration {
  success: boolean;
  apiKey: string;
  agencyId: string;
}

/** A dashboard's configuration; the webhook secret itself is never returned. */
export interface DashboardConfig {
  agencyId: string;
  dashboardName: string;
  dashboardUrl: string;
  webhookSecretSet: boolean;
  /** Last four characters of the webhook secret. */
  webhookSecretHint: string;
  status: DashboardStatus;
  createTime?: string;
  updateTime?: string;
  rateLimit?: RateLimit;
}

export interface Agency {
  agencyId: string;
  dashboardName: string;
  dashboardUrl: string;
  status: DashboardStatus;
  createTime?: string;
}

export interface RotatedApiKey {
  /** The new API key, shown only this once. */
  apiKey: string;
  agencyId: string;
  /** When the previous key stops working. */
  previousKeyExpireTime?: string;
}

/** Every list method answers one page; pass `nextPageToken` back as `pageToken` (empty on the last page). */
export interface Page {
  nextPageToken: string;
}

export interface SessionsPage extends Page {
  sessions: Session[];
}

export interface ConversationsPage extends Page {
  conversations: Conversation[];
}

export interface MessagesPage extends Page {
  messages: Message[];
}

export interface DeliveriesPage extends Page {
  deliveries: Delivery[];
}

export interface AgenciesPage extends Page {
  agencies: Agency[];
}

export interface PageOptions {
  /** At most this many items (the engine's default and maximum apply). */
  pageSize?: number;
  /** `nextPageToken` of the previous page. */
  pageToken?: string;
}

export interface TenantOption {
  /** Check that the resource belongs to this tenant (empty: any tenant of the agency). */
  tenantId?: string;
}
