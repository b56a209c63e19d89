/**
 * `@workflow-engine/client/rest`: the REST clients without gRPC or `node:` modules, for code
 * that must also bundle for the browser or the edge runtime. The API key stays a server secret.
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
  type RegisterDashboardInput,
  type RotateApiKeyInput,
  type SendMessageInput,
  type SimulateInboundInput,
  type UpdateDashboardConfigInput,
  type WaitForStatusOptions,
} from "./api.js";
export { Code, EngineError, codeOfHttpStatus, httpStatusOf, type CodeName, type ErrorDetail } from "./errors.js";
export {
  EngineRestClient,
  RegistrationRestClient,
  type EngineRestClientOptions,
  type RegistrationRestClientOptions,
  type RestClientOptions,
} from "./rest.js";
export type * from "./types.js";
