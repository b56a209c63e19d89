/** Test support: a live engine in a subprocess, free ports, waiting for things to happen. */

import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** `clients/node/` (this file runs as `clients/node/dist/test/helpers.js`). */
export const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
/** The engine's repository. */
export const REPO_ROOT = path.resolve(PACKAGE_ROOT, "..", "..");
/** The engine's Python (`make setup` creates it); `ENGINE_PYTHON` overrides it. */
export const PYTHON = process.env.ENGINE_PYTHON ?? path.resolve(PACKAGE_ROOT, "../../.venv/bin/python");

export function uniqueId(prefix: string): string {
  return `${prefix}_${randomBytes(6).toString("hex")}`;
}

/** A port nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === "object") resolve(address.port);
        else reject(new Error("no port"));
      });
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Poll `probe` until it returns something other than undefined; fail after `timeoutMs`. */
export async function eventually<T>(
  probe: () => T | undefined | Promise<T | undefined>,
  what: string,
  timeoutMs = 15_000,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

export interface RunningEngine {
  /** gRPC `host:port`. */
  readonly target: string;
  /** REST base URL. */
  readonly baseUrl: string;
  readonly psk: string;
  readonly masterKey: string;
  /** The last lines the engine logged (for failure messages). */
  logs(): string;
  stop(): Promise<void>;
}

/**
 * `python -m engine serve` on fresh ports with a fresh SQLite database; resolves once
 * `GET /readyz` answers 200. Call `stop()` at the end (the process is also killed when the
 * test process exits).
 */
export async function startEngine(extraEnv: Record<string, string> = {}): Promise<RunningEngine> {
  if (!existsSync(PYTHON)) {
    throw new Error(`${PYTHON} not found: run 'make setup' in ${REPO_ROOT} first (or set ENGINE_PYTHON)`);
  }
  const dir = await mkdtemp(path.join(tmpdir(), "wfe-node-client-"));
  const [grpcPort, httpPort] = [await freePort(), await freePort()];
  const psk = `psk-${randomBytes(16).toString("hex")}`;
  const masterKey = `master-${randomBytes(16).toString("hex")}`;
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    // The engine reads its whole configuration from ENGINE_*: none of the caller's may leak in.
    if (value !== undefined && !key.startsWith("ENGINE_") && !key.startsWith("WORKFLOW_ENGINE_")) env[key] = value;
  }
  Object.assign(env, {
    ENGINE_API_KEY: masterKey,
    WORKFLOW_ENGINE_INTERNAL_PSK: psk,
    ENGINE_SECRET_KEY: randomBytes(24).toString("hex"),
    ENGINE_DATABASE_URL: `sqlite:///${path.join(dir, "engine.db")}`,
    ENGINE_GRPC_ADDR: `127.0.0.1:${grpcPort}`,
    ENGINE_HTTP_ADDR: `127.0.0.1:${httpPort}`,
    ENGINE_SANDBOX_PAIRING_SECONDS: "0",
    ENGINE_ALLOW_PRIVATE_WEBHOOK_URLS: "true",
    ENGINE_LOG_LEVEL: "WARNING",
    ...extraEnv,
  });

  const child: ChildProcess = spawn(PYTHON, ["-m", "engine", "serve"], {
    cwd: REPO_ROOT,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString("utf8")).slice(-20_000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const killOnExit = (): void => {
    child.kill("SIGKILL");
  };
  process.once("exit", killOnExit);

  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    process.removeListener("exit", killOnExit);
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    }
    await rm(dir, { recursive: true, force: true });
  };

  const baseUrl = `http://127.0.0.1:${httpPort}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      await stop();
      throw new Error(`the engine exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${output}`);
    }
    try {
      const response = await fetch(`${baseUrl}/readyz`, { signal: AbortSignal.timeout(1_000) });
      await response.arrayBuffer();
      if (response.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`the engine was not ready within 30 s:\n${output}`);
    }
    await sleep(100);
  }

  return { target: `127.0.0.1:${grpcPort}`, baseUrl, psk, masterKey, logs: () => output, stop };
}

/** The error `call` rejects with (fails the test when it resolves). */
export async function rejection<E = unknown>(call: Promise<unknown>): Promise<E> {
  try {
    await call;
  } catch (error) {
    return error as E;
  }
  throw new Error("expected the call to fail, but it succeeded");
}

/** RFC 3339, as protobuf JSON writes a Timestamp. */
export const RFC3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{6}|\.\d{9})?Z$/;
