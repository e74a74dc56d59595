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
import { adsClient } from './fake-envoy.js';
import { EnvoyLike } from './envoy-like.js';
import type { AggregatedDiscoveryServiceClient } from '../../src/gen/envoy/service/discovery/v3/ads.js';

export interface MeshServer {
  readonly server: RunningServer;
  readonly dataDir: string;
  readonly xds: AggregatedDiscoveryServiceClient;
  api<T = unknown>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }>;
  /** Registers (Consul JSON) and fails the test on a non-200. */
  register(body: unknown): Promise<void>;
  putConfig(body: unknown): Promise<void>;
  /** A proxy token's SecretID for the proxy id. */
  token(proxyId: string): Promise<string>;
  /** An Envoy-like Delta client for the proxy, authenticated with its own token. */
  connect(proxyId: string): Promise<EnvoyLike>;
  close(): Promise<void>;
}

export async function startMeshServer(flags: Record<string, string> = {}): Promise<MeshServer> {
  const dataDir = mkdtempSync(join(tmpdir(), 'isthmus-mesh-'));
  const config = loadServerConfig({
    flags: { dataDir, httpAddr: '127.0.0.1:0', xdsAddr: '127.0.0.1:0', peeringAddr: '127.0.0.1:0', coalesceMs: '20', ...flags },
    env: {},
  });
  const server = await startServer(config, { logger: silentLogger() });
  const xds = adsClient(`127.0.0.1:${server.xdsPort}`);
  const envoys: EnvoyLike[] = [];
  const api = async <T>(method: string, path: string, body?: unknown) => {
    const res = await fetch(`http://127.0.0.1:${server.httpPort}${path}`, {
      method,
      ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
    });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
  };
  const ok = async (method: string, path: string, body: unknown) => {
    const res = await api(method, path, body);
    if (res.status !== 200) throw new Error(`${method} ${path} → ${res.status} ${JSON.stringify(res.body)}`);
  };
  const token = async (proxyId: string) => {
    const res = await api<{ SecretID: string }>('POST', '/v1/acl/token', { ProxyID: proxyId });
    if (res.status !== 200) throw new Error(`token for ${proxyId}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body.SecretID;
  };
  return {
    server,
    dataDir,
    xds,
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
    async close() {
      for (const e of envoys) e.close();
      xds.close();
      await server.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
