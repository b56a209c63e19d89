/**
 * Loading the engine's contract (`proto/workflow_engine/v1/*.proto`) at run time.
 *
 * `@grpc/proto-loader` turns the files into the method definitions `@grpc/grpc-js` calls
 * (serialisation included); a `protobufjs` Root of the same files gives the reflection used
 * to bring responses into the protobuf JSON shape of the REST API (RFC 3339 timestamps,
 * `"1.5s"` durations) and to unpack the `google.rpc` details of a failed call.
 */

import { existsSync, readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

import * as protoLoader from "@grpc/proto-loader";
import protobuf from "protobufjs";

/** The proto package of the engine. */
export const PACKAGE = "workflow_engine.v1";

/** How proto-loader turns messages into objects: camelCase, enums by name, int64 and bytes as strings. */
const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: String,
  enums: String,
  bytes: String,
  defaults: true,
  oneofs: false,
  json: true,
};

/** `clients/node/` (or the installed package's directory): this file is `dist/src/protos.js`. */
const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

export interface Definitions {
  /** For `@grpc/grpc-js`: `definitions["workflow_engine.v1.SessionsService"].CreateSession`. */
  readonly packageDefinition: protoLoader.PackageDefinition;
  /** Reflection of the same files (plus `google/rpc/status.proto` and `error_details.proto`). */
  readonly root: protobuf.Root;
  /** The directory the `workflow_engine/v1/*.proto` files were read from. */
  readonly protoDir: string;
}

const cache = new Map<string, Definitions>();

function hasContract(dir: string): boolean {
  return existsSync(path.join(dir, "workflow_engine", "v1", "sessions.proto"));
}

/**
 * The directory holding `workflow_engine/v1/*.proto`: `protoDir` when given, else
 * `$WORKFLOW_ENGINE_PROTO_DIR`, else the package's own `proto/` (a packed copy), else the
 * engine repository's `proto/` two levels up (`clients/node/../../proto`).
 */
export function resolveProtoDir(protoDir?: string): string {
  const candidates = [
    protoDir,
    process.env.WORKFLOW_ENGINE_PROTO_DIR,
    path.join(PACKAGE_ROOT, "proto"),
    path.resolve(PACKAGE_ROOT, "..", "..", "proto"),
  ].filter((dir): dir is string => typeof dir === "string" && dir !== "");
  for (const dir of candidates) {
    if (hasContract(dir)) return path.resolve(dir);
  }
  throw new Error(
    `workflow_engine/v1/*.proto not found in ${candidates.join(", ")}; pass protoDir or set WORKFLOW_ENGINE_PROTO_DIR`,
  );
}

/** The include directory of the vendored `google/api` and `google/rpc` protos. */
export const PROTO_DEPS_DIR = path.join(PACKAGE_ROOT, "proto-deps");

/** Load (once per directory) the engine's protos. */
export function loadDefinitions(protoDir?: string): Definitions {
  const dir = resolveProtoDir(protoDir);
  const cached = cache.get(dir);
  if (cached) return cached;

  const files = readdirSync(path.join(dir, "workflow_engine", "v1"))
    .filter((name) => name.endsWith(".proto"))
    .sort()
    .map((name) => `workflow_engine/v1/${name}`);
  const includeDirs = [dir, PROTO_DEPS_DIR];
  const errorFiles = ["google/rpc/status.proto", "google/rpc/error_details.proto"];

  const packageDefinition = protoLoader.loadSync(files, { ...LOADER_OPTIONS, includeDirs });

  // proto-loader has registered google/protobuf/descriptor.proto with protobufjs by now;
  // the other well-known types ship with protobufjs.
  const root = new protobuf.Root();
  const resolveDefault = root.resolvePath.bind(root);
  root.resolvePath = (origin: string, target: string): string | null => {
    if (path.isAbsolute(target)) return target;
    for (const include of includeDirs) {
      const candidate = path.join(include, target);
      if (existsSync(candidate)) return candidate;
    }
    return resolveDefault(origin, target);
  };
  root.loadSync([...files, ...errorFiles], { keepCase: false });
  root.resolveAll();

  const definitions: Definitions = { packageDefinition, root, protoDir: dir };
  cache.set(dir, definitions);
  return definitions;
}

function fraction(nanos: number): string {
  if (nanos === 0) return "";
  const digits = String(nanos).padStart(9, "0");
  if (nanos % 1_000_000 === 0) return `.${digits.slice(0, 3)}`;
  if (nanos % 1_000 === 0) return `.${digits.slice(0, 6)}`;
  return `.${digits}`;
}

/** `{seconds, nanos}` as protobuf JSON writes a Timestamp: `2026-05-01T12:00:00.250Z`. */
export function timestampToJson(value: { seconds?: unknown; nanos?: unknown }): string {
  const seconds = Number(value.seconds ?? 0);
  const nanos = Number(value.nanos ?? 0);
  const base = new Date(seconds * 1000).toISOString().slice(0, 19);
  return `${base}${fraction(nanos)}Z`;
}

/** `{seconds, nanos}` as protobuf JSON writes a Duration: `"1.500s"`. */
export function durationToJson(value: { seconds?: unknown; nanos?: unknown }): string {
  const seconds = BigInt(String(value.seconds ?? 0));
  const nanos = Number(value.nanos ?? 0);
  const negative = seconds < 0n || nanos < 0;
  const absSeconds = seconds < 0n ? -seconds : seconds;
  return `${negative ? "-" : ""}${absSeconds}${fraction(Math.abs(nanos))}s`;
}

type Plain = Record<string, unknown>;

function isPlain(value: unknown): value is Plain {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function convertValue(type: protobuf.Type, value: unknown): unknown {
  if (!isPlain(value)) return value;
  switch (type.fullName) {
    case ".google.protobuf.Timestamp":
      return timestampToJson(value);
    case ".google.protobuf.Duration":
      return durationToJson(value);
    default:
      return toProtoJson(type, value);
  }
}

/**
 * Bring an object made by proto-loader (or protobufjs' `toObject`) into the shape of the
 * engine's JSON: Timestamps and Durations as strings, unset message fields left out. Scalars
 * (int64 and bytes already strings, enums already names) are kept as they are.
 */
export function toProtoJson(type: protobuf.Type, object: Plain): Plain {
  const result: Plain = { ...object };
  for (const field of type.fieldsArray) {
    const key = field.name;
    const value = result[key];
    if (value === null || value === undefined) {
      if (field.resolvedType instanceof protobuf.Type) delete result[key];
      continue;
    }
    const resolved = field.resolvedType;
    if (!(resolved instanceof protobuf.Type)) continue;
    if (field.map && isPlain(value)) {
      result[key] = Object.fromEntries(Object.entries(value).map(([k, v]) => [k, convertValue(resolved, v)]));
    } else if (field.repeated && Array.isArray(value)) {
      result[key] = value.map((item) => convertValue(resolved, item));
    } else {
      result[key] = convertValue(resolved, value);
    }
  }
  return result;
}

/**
 * The details of the `google.rpc.Status` in a `grpc-status-details-bin` trailer, as the REST
 * API renders them: `{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"}`.
 */
export function decodeStatusDetails(root: protobuf.Root, bytes: Uint8Array): Plain[] {
  const statusType = root.lookupType("google.rpc.Status");
  const status = statusType.decode(bytes) as unknown as { details?: { typeUrl?: string; type_url?: string; value?: Uint8Array }[] };
  const details: Plain[] = [];
  for (const any of status.details ?? []) {
    const typeUrl = any.typeUrl ?? any.type_url ?? "";
    const name = typeUrl.slice(typeUrl.lastIndexOf("/") + 1);
    let detailType: protobuf.Type | null = null;
    try {
      detailType = root.lookupType(name);
    } catch {
      detailType = null;
    }
    if (detailType === null || any.value === undefined) {
      details.push({ "@type": typeUrl, value: Buffer.from(any.value ?? new Uint8Array()).toString("base64") });
      continue;
    }
    const object = detailType.toObject(detailType.decode(any.value), {
      longs: String,
      enums: String,
      bytes: String,
      json: true,
    });
    details.push({ "@type": typeUrl, ...toProtoJson(detailType, object) });
  }
  return details;
}
