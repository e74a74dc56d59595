/**
 * A real isthmus server in-process (startServer: LMDB store, catalog, CA, snapshots, xDS) on
 * 127.0.0.1:0 with a temp data dir, and helpers to drive it over its HTTP API like a user would.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { loadServerConfig } from '../../src/config/index.js';
import { silentLogger } from '../../src/log.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { ApiClient } from '../../src/api/client.js';
import { fetchXdsTls } from '../../src/api/xds-tls-client.js';
import type { XdsClientTls } from '../../src/xds/tls.js';
import { adsClient } from './fake-envoy.js';
import { startServerProcess, type ServerProcess, type ServerProcessOptions } from './process.js';
import { EnvoyLike } from './envoy-like.js';
import type { AggregatedDiscoveryServiceClient } from '../../src/gen/envoy/service/discovery/v3/ads.js';

/** What tests drive, whether the server runs in-process or as its own process. */
export interface MeshNode {
  api<T = unknown>(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: T }>;
  /** Registers (Consul JSON) and fails the test on a non-200. */
  register(body: unknown): Promise<void>;
  putConfig(body: unknown): Promise<void>;
  /** A proxy token's SecretID for the proxy id. */
  token(proxyId: string): Promise<string>;
  /** An Envoy-like Delta client for the proxy, authenticated with its own token. */
  connect(proxyId: string): Promise<EnvoyLike>;
  /** The cluster's trust domain, as `GET /v1/connect/ca/roots` reports it. */
  trustDomain(): Promise<string>;
  /** The HTTP API's `127.0.0.1:<port>` (what a Prometheus scrape target names). */
  readonly httpAddress: string;
  /** How to verify the xDS port (`GET /v1/xds/server` at start); undefined: plaintext. */
  readonly xdsTls: XdsClientTls | undefined;
  close(): Promise<void>;
}

/** A mesh node that is a real `isthmus server` process (its output, ports and data dir). */
export interface MeshProcess extends MeshNode {
  readonly proc: ServerProcess;
}

export interface MeshServer extends MeshNode {
  readonly server: RunningServer;
  readonly dataDir: string;
  readonly xds: AggregatedDiscoveryServiceClient;
}

/**
 * The HTTP and xDS side of a mesh node on the given ports. With `httpToken` (the server's
 * `--http-token`), every API call carries it as `Authorization: Bearer`.
 */
async function nodeOver(
  httpPort: number,
  xdsPort: number,
  stop: () => Promise<void>,
  httpToken?: string,
): Promise<MeshNode & { xds: AggregatedDiscoveryServiceClient }> {
  const xdsTls = await fetchXdsTls(new ApiClient(`http://127.0.0.1:${httpPort}`));
  const xds = adsClient(`127.0.0.1:${xdsPort}`, xdsTls);
  const envoys: EnvoyLike[] = [];
  const auth: Record<string, string> = httpToken ? { authorization: `Bearer ${httpToken}` } : {};
  const api = async <T>(method: string, path: string, body?: unknown) => {
    const res = await fetch(`http://127.0.0.1:${httpPort}${path}`, {
      method,
      headers: body === undefined ? auth : { ...auth, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
  };
  const ok = async (method: string, path: string, body: unknown) => {
    const res = await api(method, path, body);
    if (res.status !== 200)
      throw new Error(`${method} ${path} → ${res.status} ${JSON.stringify(res.body)}`);
  };
  const token = async (proxyId: string) => {
    const res = await api<{ SecretID: string }>('POST', '/v1/acl/token', { ProxyID: proxyId });
    if (res.status !== 200)
      throw new Error(`token for ${proxyId}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body.SecretID;
  };
  return {
    xds,
    xdsTls,
    api,
    register: (body) => ok('PUT', '/v1/agent/service/register', body),
    putConfig: (body) => ok('PUT', '/v1/config', body),
    token,
    async connect(proxyId) {
      const md = new grpc.Metadata();
      md.set('x-isthmus-token', await token(proxyId));
      const envoy = new EnvoyLike(xds, proxyId, md);
      envoys.push(envoy);
      return envoy;
    },
    async trustDomain() {
      return (await api<{ TrustDomain: string }>('GET', '/v1/connect/ca/roots')).body.TrustDomain;
    },
    httpAddress: `127.0.0.1:${httpPort}`,
    async close() {
      for (const e of envoys) e.close();
      xds.close();
      await stop();
    },
  };
}

/**
 * A real `isthmus server` process on 127.0.0.1:0 (its own data dir), driven like a user would:
 * flags are the same camelCase keys as startMeshServer's (`datacenter`, `caRotationPhaseMs`, …),
 * `opts.env` is added to its environment (e.g. NODE_OPTIONS), `opts.dataDir` reuses a data dir (a
 * restart).
 */
export async function startMeshProcess(
  flags: Record<string, string> = {},
  opts: ServerProcessOptions = {},
): Promise<MeshProcess> {
  const args = Object.entries({ coalesceMs: '20', ...flags }).flatMap(([k, v]) => [
    `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`,
    v,
  ]);
  const proc = await startServerProcess(args, opts);
  const node = await nodeOver(
    proc.httpPort,
    proc.xdsPort,
    async () => {
      proc.child.kill('SIGTERM');
      await proc.exited;
    },
    flags.httpToken,
  );
  return { ...node, proc };
}

export async function startMeshServer(flags: Record<string, string> = {}): Promise<MeshServer> {
  const dataDir = mkdtempSync(join(tmpdir(), 'isthmus-mesh-'));
  const config = loadServerConfig({
    flags: {
      dataDir,
      httpAddr: '127.0.0.1:0',
      xdsAddr: '127.0.0.1:0',
      peeringAddr: '127.0.0.1:0',
      coalesceMs: '20',
      ...flags,
    },
    env: {},
  });
  const server = await startServer(config, { logger: silentLogger() });
  const node = await nodeOver(
    server.httpPort,
    server.xdsPort,
    async () => {
      await server.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
    flags.httpToken,
  );
  return { ...node, server, dataDir };
}
