/**
 * Real isthmus server processes with real Envoys in front of real apps: the pieces every
 * real-Envoy test assembles (one cluster, or two peered ones with mesh gateways).
 */
import { buildBootstrap, type BootstrapProxyKind } from '../../src/mesh/bootstrap.js';
import { type MeshProcess, startMeshProcess } from '../helpers/mesh-server.js';
import { waitFor } from '../helpers/wait.js';
import { type EnvoyProcess, startEnvoy, waitHealthy } from './harness.js';

export type { MeshProcess };

/** A cluster's server process (fast coalescing, so tests see changes quickly). */
export function startCluster(
  datacenter: string,
  flags: Record<string, string> = {},
): Promise<MeshProcess> {
  return startMeshProcess({ datacenter, ...flags });
}

/**
 * A registration of `name` on 127.0.0.1:`appPort` with a sidecar on `sidecarPort`, its TTL check
 * passing, and the given upstreams (Consul's JSON).
 */
export function withSidecar(
  name: string,
  appPort: number,
  sidecarPort: number,
  upstreams: readonly unknown[] = [],
  extra: Record<string, unknown> = {},
) {
  return {
    ID: name,
    Name: name,
    Address: '127.0.0.1',
    Port: appPort,
    Check: { TTL: '600s', Status: 'passing' },
    Connect: { SidecarService: { Port: sidecarPort, Proxy: { Upstreams: upstreams } } },
    ...extra,
  };
}

/**
 * A mesh gateway on 127.0.0.1:`port` whose WAN address is the same (everything is loopback here),
 * one `default` listener for both sides. With `wanPort`, the WAN address has that port and the
 * gateway binds its tagged addresses only: a `lan` and a `wan` listener, each with its side's
 * chains (docs/architecture.md §5 "What a gateway routes").
 */
export function meshGateway(
  id: string,
  port: number,
  meta: Record<string, string> = {},
  opts: { readonly wanPort?: number } = {},
) {
  return {
    ID: id,
    Name: 'mesh-gateway',
    Kind: 'mesh-gateway',
    Address: '127.0.0.1',
    Port: port,
    Meta: meta,
    TaggedAddresses: {
      lan: { Address: '127.0.0.1', Port: port },
      wan: { Address: '127.0.0.1', Port: opts.wanPort ?? port },
    },
    ...(opts.wanPort === undefined
      ? {}
      : {
          Proxy: {
            Config: {
              envoy_gateway_bind_tagged_addresses: true,
              envoy_gateway_no_default_bind: true,
            },
          },
        }),
  };
}

/**
 * The bootstrap `isthmus envoy bootstrap` prints for this proxy (same builder), with a fresh token.
 */
export async function bootstrapFor(
  node: MeshProcess,
  proxyId: string,
  kind: BootstrapProxyKind,
  datacenter: string,
) {
  return buildBootstrap({
    proxyId,
    kind,
    datacenter,
    xdsAddr: { host: '127.0.0.1', port: node.proc.xdsPort },
    adminAddr: { host: '127.0.0.1', port: 0 },
    token: await node.token(proxyId),
    // As `isthmus envoy bootstrap` asks the server (GET /v1/xds/server): TLS unless --xds-plaintext.
    tls: await node.proc.xdsTls(),
  });
}

/** Starts a real Envoy for a registered proxy and waits until it is LIVE with nothing rejected. */
export async function startProxy(
  node: MeshProcess,
  proxyId: string,
  opts: { kind?: BootstrapProxyKind; datacenter: string },
): Promise<EnvoyProcess> {
  const envoy = await startEnvoy(
    proxyId,
    await bootstrapFor(node, proxyId, opts.kind ?? 'connect-proxy', opts.datacenter),
  );
  await waitHealthy(envoy);
  return envoy;
}

/** A started Envoy and the server it takes its config from. */
export interface PlacedProxy {
  readonly node: MeshProcess;
  readonly envoy: EnvoyProcess;
}

/** `startProxy`, remembering which server the Envoy belongs to (for `waitAllSynced`). */
export async function startPlacedProxy(
  node: MeshProcess,
  proxyId: string,
  opts: { kind?: BootstrapProxyKind; datacenter: string },
): Promise<PlacedProxy> {
  return { node, envoy: await startProxy(node, proxyId, opts) };
}

/** Every Envoy LIVE with nothing rejected, and SYNCED for every type in its server's status. */
export async function waitAllSynced(proxies: readonly PlacedProxy[]): Promise<void> {
  for (const { node, envoy } of proxies) {
    await waitHealthy(envoy);
    await waitSynced(node, envoy.name);
  }
}

/**
 * The API's proxy status: per xDS type its status (SYNCED, NOT_SENT, STALE, ERROR for NACKED,
 * NONE).
 */
export async function proxyTypeStates(
  node: MeshProcess,
  proxyId: string,
): Promise<Record<string, string>> {
  const res = await node.api<{ Types?: Record<string, { status: string }> }>(
    'GET',
    `/v1/xds/proxies/${encodeURIComponent(proxyId)}`,
  );
  if (res.status !== 200)
    throw new Error(`proxy status of ${proxyId}: HTTP ${res.status} ${JSON.stringify(res.body)}`);
  return Object.fromEntries(Object.entries(res.body.Types ?? {}).map(([t, s]) => [t, s.status]));
}

/**
 * Waits until every type the proxy holds is SYNCED in the server's proxy status (NONE: nothing of
 * it).
 */
export async function waitSynced(
  node: MeshProcess,
  proxyId: string,
): Promise<Record<string, string>> {
  let last: Record<string, string> = {};
  return waitFor(
    async () => {
      last = await proxyTypeStates(node, proxyId);
      const values = Object.values(last);
      return values.length > 0 && values.every((s) => s === 'SYNCED' || s === 'NONE') && last;
    },
    {
      timeoutMs: 30_000,
      intervalMs: 100,
      what: `${proxyId} SYNCED for every type in proxy-status`,
    },
  );
}

/** Polls `fn` until it resolves without throwing; for "traffic flows now" checks. */
export function eventually<T>(fn: () => Promise<T>, what: string, timeoutMs = 30_000): Promise<T> {
  return waitFor(async () => ({ value: await fn() }), { timeoutMs, intervalMs: 200, what }).then(
    (r) => r.value,
  );
}
