/** The one error type both clients throw, with the gRPC code and its HTTP equivalent. */

/** gRPC status codes (the `code` of an `EngineError`, and of the REST error body). */
export const Code = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

export type CodeName = keyof typeof Code;

const NAMES: Record<number, CodeName> = Object.fromEntries(
  Object.entries(Code).map(([name, value]) => [value, name as CodeName]),
);

/** grpc-gateway's table, as the engine's REST gateway applies it. */
const HTTP_STATUS: Record<number, number> = {
  [Code.OK]: 200,
  [Code.CANCELLED]: 499,
  [Code.UNKNOWN]: 500,
  [Code.INVALID_ARGUMENT]: 400,
  [Code.DEADLINE_EXCEEDED]: 504,
  [Code.NOT_FOUND]: 404,
  [Code.ALREADY_EXISTS]: 409,
  [Code.PERMISSION_DENIED]: 403,
  [Code.RESOURCE_EXHAUSTED]: 429,
  [Code.FAILED_PRECONDITION]: 400,
  [Code.ABORTED]: 409,
  [Code.OUT_OF_RANGE]: 400,
  [Code.UNIMPLEMENTED]: 501,
  [Code.INTERNAL]: 500,
  [Code.UNAVAILABLE]: 503,
  [Code.DATA_LOSS]: 500,
  [Code.UNAUTHENTICATED]: 401,
};

/** The HTTP status the REST API answers for a gRPC code. */
export function httpStatusOf(code: number): number {
  return HTTP_STATUS[code] ?? 500;
}

/** The gRPC code of an HTTP error status that came without the engine's JSON error body. */
export function codeOfHttpStatus(status: number): number {
  switch (status) {
    case 400:
    case 413:
      return Code.INVALID_ARGUMENT;
    case 401:
      return Code.UNAUTHENTICATED;
    case 403:
      return Code.PERMISSION_DENIED;
    case 404:
      return Code.NOT_FOUND;
    case 405:
    case 501:
      return Code.UNIMPLEMENTED;
    case 409:
      return Code.ABORTED;
    case 429:
      return Code.RESOURCE_EXHAUSTED;
    case 499:
      return Code.CANCELLED;
    case 502:
    case 503:
      return Code.UNAVAILABLE;
    case 504:
      return Code.DEADLINE_EXCEEDED;
    default:
      return status >= 500 ? Code.INTERNAL : Code.UNKNOWN;
  }
}

/** A `google.rpc` detail in JSON form: `{"@type": "type.googleapis.com/google.rpc.BadRequest", ...}`. */
export interface ErrorDetail {
  "@type": string;
  [field: string]: unknown;
}

export interface EngineErrorInit {
  status: number;
  code: number;
  message: string;
  details?: ErrorDetail[];
  requestId?: string;
  transport: "grpc" | "rest";
  cause?: unknown;
}

/**
 * A call to the engine failed. `code` is the gRPC status code (see `Code`), `status` the HTTP
 * status (over REST as answered, over gRPC the REST API's equivalent), `details` the
 * `google.rpc` details (`BadRequest` with field violations, `RetryInfo`, `ErrorInfo`, ...),
 * `requestId` the call's `x-request-id`: quote it when asking what went wrong.
 */
export class EngineError extends Error {
  readonly status: number;
  readonly code: number;
  readonly details: ErrorDetail[];
  readonly requestId: string | undefined;
  readonly transport: "grpc" | "rest";

  constructor(init: EngineErrorInit) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = "EngineError";
    this.status = init.status;
    this.code = init.code;
    this.details = init.details ?? [];
    this.requestId = init.requestId;
    this.transport = init.transport;
  }

  /** `UNAUTHENTICATED`, `NOT_FOUND`, ... */
  get codeName(): CodeName | "UNKNOWN" {
    return NAMES[this.code] ?? "UNKNOWN";
  }

  /** The first detail of a type, by its short name: `error.detail("RetryInfo")`. */
  detail(typeName: string): ErrorDetail | undefined {
    return this.details.find((found) => String(found["@type"]).split(/[/.]/).pop() === typeName);
  }

  /** Seconds to wait before retrying, from a `RetryInfo` detail (RESOURCE_EXHAUSTED), if any. */
  get retryAfterSeconds(): number | undefined {
    const delay = this.detail("RetryInfo")?.["retryDelay"];
    if (typeof delay !== "string" || !delay.endsWith("s")) return undefined;
    const seconds = Number(delay.slice(0, -1));
    return Number.isFinite(seconds) ? seconds : undefined;
  }

  /** The invalid request fields of a `BadRequest` detail (fields by JSON name). */
  get fieldViolations(): { field: string; description: string }[] {
    const violations = this.detail("BadRequest")?.["fieldViolations"];
    if (!Array.isArray(violations)) return [];
    return violations.map((item: { field?: unknown; description?: unknown }) => ({
      field: String(item.field ?? ""),
      description: String(item.description ?? ""),
    }));
  }

  override toString(): string {
    const suffix = this.requestId ? ` (request id ${this.requestId})` : "";
    return `EngineError ${this.codeName}: ${this.message}${suffix}`;
  }
}
