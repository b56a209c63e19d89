/** The gRPC clients: `@grpc/grpc-js` with the method definitions `@grpc/proto-loader` reads from `proto/`. */

import { randomUUID } from "node:crypto";

import * as grpc from "@grpc/grpc-js";
import type { MethodDefinition, ServiceDefinition } from "@grpc/proto-loader";

import { EngineApi, OPERATIONS, RegistrationApi, type JsonObject, type OperationName } from "./api.js";
import { Code, EngineError, httpStatusOf } from "./errors.js";
import { PACKAGE, decodeStatusDetails, loadDefinitions, toProtoJson, type Definitions } from "./protos.js";

export interface GrpcClientOptions {
  /** `host:port` of the engine's gRPC server, e.g. `127.0.0.1:50051`. */
  target: string;
  /** Channel credentials; default plaintext (`grpc.credentials.createInsecure()`). */
  credentials?: grpc.ChannelCredentials;
  /** Extra `@grpc/grpc-js` channel options. */
  channelOptions?: grpc.ChannelOptions;
  /** Deadline of each call, in milliseconds (default 30 000). */
  timeoutMs?: number;
  /** Where `workflow_engine/v1/*.proto` are (default: see `resolveProtoDir`). */
  protoDir?: string;
}

const DETAILS_KEY = "grpc-status-details-bin";
const REQUEST_ID_KEY = "x-request-id";

function firstString(metadata: grpc.Metadata | undefined, key: string): string | undefined {
  const value = metadata?.get(key)[0];
  return typeof value === "string" ? value : undefined;
}

/** One channel, authenticated with fixed metadata; calls any RPC of the engine by name. */
class GrpcTransport {
  private readonly client: grpc.Client;
  private readonly definitions: Definitions;
  private readonly timeoutMs: number;

  constructor(
    options: GrpcClientOptions,
    private readonly auth: ReadonlyArray<readonly [string, string]>,
  ) {
    this.definitions = loadDefinitions(options.protoDir);
    this.client = new grpc.Client(
      options.target,
      options.credentials ?? grpc.credentials.createInsecure(),
      options.channelOptions ?? {},
    );
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  close(): void {
    this.client.close();
  }

  invoke(operation: OperationName, request: JsonObject): Promise<JsonObject> {
    const { service, public: isPublic } = OPERATIONS[operation];
    const serviceDefinition = this.definitions.packageDefinition[`${PACKAGE}.${service}`] as ServiceDefinition;
    const method = serviceDefinition[operation] as MethodDefinition<JsonObject, JsonObject>;
    const responseType = this.definitions.root.lookupType(`${PACKAGE}.${operation}Response`);

    const requestId = randomUUID();
    const metadata = new grpc.Metadata();
    metadata.set(REQUEST_ID_KEY, requestId);
    if (!isPublic) for (const [key, value] of this.auth) metadata.set(key, value);

    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest<JsonObject, JsonObject>(
        method.path,
        method.requestSerialize,
        method.responseDeserialize,
        request,
        metadata,
        { deadline: Date.now() + this.timeoutMs },
        (error, response) => {
          if (error) {
            reject(this.toEngineError(error, requestId));
          } else {
            resolve(toProtoJson(responseType, response ?? {}));
          }
        },
      );
    });
  }

  private toEngineError(error: grpc.ServiceError, requestId: string): EngineError {
    let details: EngineError["details"] = [];
    const raw = error.metadata?.get(DETAILS_KEY)[0];
    if (raw instanceof Buffer) {
      try {
        details = decodeStatusDetails(this.definitions.root, raw) as EngineError["details"];
      } catch {
        details = [];
      }
    }
    const code = typeof error.code === "number" ? error.code : Code.UNKNOWN;
    return new EngineError({
      status: httpStatusOf(code),
      code,
      message: error.details || error.message,
      details,
      requestId: firstString(error.metadata, REQUEST_ID_KEY) ?? requestId,
      transport: "grpc",
      cause: error,
    });
  }
}

export interface EngineGrpcClientOptions extends GrpcClientOptions {
  /** The dashboard's API key (or the engine's master key), sent as `x-api-key`. */
  apiKey: string;
  /** Agency every call acts for; empty: the key's own agency. Needed with the master key. */
  agencyId?: string;
}

/**
 * The SessionsService and the dashboard side of the WebhookService over gRPC, with the
 * dashboard's API key. Server side only (route handlers, server actions, workers).
 */
export class EngineGrpcClient extends EngineApi {
  private readonly transport: GrpcTransport;

  constructor(options: EngineGrpcClientOptions) {
    super(options.agencyId);
    if (!options.apiKey) throw new TypeError("EngineGrpcClient needs an apiKey");
    this.transport = new GrpcTransport(options, [["x-api-key", options.apiKey]]);
  }

  protected invoke(operation: OperationName, request: JsonObject): Promise<JsonObject> {
    return this.transport.invoke(operation, request);
  }

  /** Close the channel. */
  close(): void {
    this.transport.close();
  }
}

export interface RegistrationGrpcClientOptions extends GrpcClientOptions {
  /** The pre-shared key `WORKFLOW_ENGINE_INTERNAL_PSK`, sent as `authorization: PSK <psk>`. */
  psk?: string;
  /** Or a dashboard's own API key (`x-api-key`): its config and key rotation only. */
  apiKey?: string;
}

/** The RegistryService over gRPC: register dashboards, read and change their configuration, rotate keys. */
export class RegistrationGrpcClient extends RegistrationApi {
  private readonly transport: GrpcTransport;

  constructor(options: RegistrationGrpcClientOptions) {
    super();
    let auth: [string, string];
    if (options.psk) auth = ["authorization", `PSK ${options.psk}`];
    else if (options.apiKey) auth = ["x-api-key", options.apiKey];
    else throw new TypeError("RegistrationGrpcClient needs a psk (or an apiKey)");
    this.transport = new GrpcTransport(options, [auth]);
  }

  protected invoke(operation: OperationName, request: JsonObject): Promise<JsonObject> {
    return this.transport.invoke(operation, request);
  }

  /** Close the channel. */
  close(): void {
    this.transport.close();
  }
}
