/**
 * `@workflow-engine/client`: the Workflow Engine for Node.js and Next.js dashboards.
 *
 * - `EngineGrpcClient` / `EngineRestClient`: sessions, messages, conversations and webhook
 *   deliveries with the dashboard's API key, over gRPC or REST (same methods, same results).
 * - `RegistrationGrpcClient` / `RegistrationRestClient`: registration and configuration with
 *   the pre-shared key.
 * - `verifyWebhook` / `verifyWebhookEd25519`: check a delivery's Standard Webhooks signature.
 *
 * `@workflow-engine/client/rest` holds the REST clients alone (no gRPC, no `node:` modules).
 */

export {
  EngineApi,
  OPERATIONS,
  RegistrationApi,
  deliveryStatus,
  paginate,
  sessionStatus,
  type CreateSessionInput,
  type ListConversationsInput,
  type ListDeliveriesInput,
  type ListMessagesInput,
  type ListSessionsInput,
  type Operation,
  type OperationName,
  type RegisterDashboardInput,
  type RotateApiKeyInput,
  type SendMessageInput,
  type SimulateInboundInput,
  type UpdateDashboardConfigInput,
  type WaitForStatusOptions,
} from "./api.js";
export { Code, EngineError, codeOfHttpStatus, httpStatusOf, type CodeName, type ErrorDetail } from "./errors.js";
export {
  EngineGrpcClient,
  RegistrationGrpcClient,
  type EngineGrpcClientOptions,
  type GrpcClientOptions,
  type RegistrationGrpcClientOptions,
} from "./grpc.js";
export { loadDefinitions, resolveProtoDir, PROTO_DEPS_DIR } from "./protos.js";
export {
  EngineRestClient,
  RegistrationRestClient,
  type EngineRestClientOptions,
  type RegistrationRestClientOptions,
  type RestClientOptions,
} from "./rest.js";
export type * from "./types.js";
export {
  DEFAULT_TOLERANCE_SECONDS,
  WebhookVerificationError,
  ed25519PublicKey,
  verifyWebhook,
  verifyWebhookEd25519,
  webhookHmacKey,
  type Ed25519Options,
  type WebhookBody,
  type WebhookHeaders,
} from "./webhooks.js";
