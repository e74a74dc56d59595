/**
 * The demo's mesh with real Envoy: the two apps, their registrations (api is HTTP, so its sidecar
 * hands it the caller's identity in `x-forwarded-client-cert`; web calls api from peer cluster-a
 * through B's mesh gateway, mode `local`, so the request crosses both gateways; B has an api of
 * its own too, web's upstream `api` without a peer, for README "Fail over to a peer"), and one Envoy per
 * proxy, each started from the bootstrap `isthmus envoy bootstrap` prints, with a fresh proxy
 * token.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { buildBootstrap, type BootstrapProxyKind } from '../mesh/bootstrap.js';
import type { DemoCluster } from './demo-cluster.js';
import type { DemoRun } from './demo-run.js';
import { type DemoApp, startApiApp, startWebApp } from './demo-apps.js';
import { type DemoEnvoy, startDemoEnvoy, stopAllDemoEnvoys } from './envoy-process.js';
import { freePort } from './free-port.js';
import { gateway } from './tour-steps.js';

export interface EnvoyMeshPorts {
  readonly apiSidecar: number;
  readonly webSidecar: number;
  /** web's upstream listener for api (in web's sidecar). */
  readonly upstream: number;
  /** B's own api: its sidecar, and web's upstream listener for it (README "Fail over to a peer"). */
  readonly apiBSidecar: number;
  readonly localUpstream: number;
  readonly gatewayA: number;
  readonly gatewayB: number;
}

export interface EnvoyMesh {
  readonly api: DemoApp;
  /** api in B, which web reaches through its upstream `api` without a peer. */
  readonly apiB: DemoApp;
  readonly web: DemoApp;
  readonly ports: EnvoyMeshPorts;
}

export const proxies = [
  { id: 'api-sidecar-proxy', cluster: 'A', kind: 'connect-proxy' },
  { id: 'gw-a', cluster: 'A', kind: 'mesh-gateway' },
  { id: 'gw-b', cluster: 'B', kind: 'mesh-gateway' },
  { id: 'web-sidecar-proxy', cluster: 'B', kind: 'connect-proxy' },
  { id: 'api-b-sidecar-proxy', cluster: 'B', kind: 'connect-proxy' },
] as const satisfies readonly { id: string; cluster: 'A' | 'B'; kind: BootstrapProxyKind }[];
export type ProxyId = (typeof proxies)[number]['id'];

const withSidecar = (
  name: string,
  appPort: number,
  sidecarPort: number,
  upstreams: readonly unknown[] = [],
) => ({
  ID: name,
  Name: name,
  Address: '127.0.0.1',
  Port: appPort,
  Connect: { SidecarService: { Port: sidecarPort, Proxy: { Upstreams: upstreams } } },
});

/** Starts both apps and registers the services, sidecars and gateways on ports picked now. */
export async function registerEnvoyMesh(
  run: DemoRun,
  a: DemoCluster,
  b: DemoCluster,
): Promise<EnvoyMesh> {
  const taken = new Set<number>();
  const ports: EnvoyMeshPorts = {
    apiSidecar: await freePort(taken),
    webSidecar: await freePort(taken),
    upstream: await freePort(taken),
    gatewayA: await freePort(taken),
    gatewayB: await freePort(taken),
    apiBSidecar: await freePort(taken),
    localUpstream: await freePort(taken),
  };
  const api = run.own(await startApiApp('dc-a'), (app) => app.close());
  const web = run.own(await startWebApp(ports.upstream), (app) => app.close());
  const apiB = run.own(await startApiApp('dc-b'), (app) => app.close());
  await a.api.put('/v1/config', { Kind: 'service-defaults', Name: 'api', Protocol: 'http' });
  await a.api.put('/v1/agent/service/register', withSidecar('api', api.port, ports.apiSidecar));
  await a.api.put('/v1/agent/service/register', gateway('gw-a', ports.gatewayA));
  const upstream = {
    DestinationName: 'api',
    DestinationPeer: 'cluster-a',
    LocalBindPort: ports.upstream,
    MeshGateway: { Mode: 'local' },
  };
  const localUpstream = { DestinationName: 'api', LocalBindPort: ports.localUpstream };
  await b.api.put(
    '/v1/agent/service/register',
    withSidecar('web', web.port, ports.webSidecar, [upstream, localUpstream]),
  );
  await b.api.put('/v1/agent/service/register', gateway('gw-b', ports.gatewayB));
  await b.api.put('/v1/config', { Kind: 'service-defaults', Name: 'api', Protocol: 'http' });
  // A TTL check the walkthrough turns critical and back (PUT /v1/agent/check/fail/service:api-b).
  await b.api.put('/v1/agent/service/register', {
    ...withSidecar('api', apiB.port, ports.apiBSidecar),
    ID: 'api-b',
    Check: { TTL: '24h', Status: 'passing' },
  });
  return { api, apiB, web, ports };
}

/**
 * One Envoy per proxy, in parallel, each owned by the run (stopped on any exit). Resolves once all
 * have an admin address; a failure to start names the Envoy.
 */
export async function startEnvoys(
  run: DemoRun,
  binary: string,
  clusters: { A: DemoCluster; B: DemoCluster },
): Promise<Map<ProxyId, DemoEnvoy>> {
  const dir = join(run.workDir, 'envoy');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // Stopped after each Envoy started (owners stop in reverse order): catches those still starting.
  run.own(undefined, () => stopAllDemoEnvoys());
  const started = await Promise.allSettled(
    proxies.map(async (p) => {
      const c = clusters[p.cluster];
      const { SecretID } = await c.api.post<{ SecretID: string }>('/v1/acl/token', {
        ProxyID: p.id,
      });
      const bootstrap = buildBootstrap({
        proxyId: p.id,
        kind: p.kind,
        datacenter: c.datacenter,
        xdsAddr: { host: '127.0.0.1', port: c.server.xdsPort },
        adminAddr: { host: '127.0.0.1', port: 0 },
        token: SecretID,
        tls: c.server.xdsTls(),
      });
      // Ctrl-C while this token was asked for: start no Envoy after the demo began to stop.
      if (run.stopped) throw new Error('the demo is stopping');
      return run.own(await startDemoEnvoy({ name: p.id, binary, bootstrap, dir }), (e) => e.stop());
    }),
  );
  const failed = started.find((s) => s.status === 'rejected');
  if (failed) throw failed.reason;
  return new Map(
    started.map((s, i) => [proxies[i]!.id, (s as PromiseFulfilledResult<DemoEnvoy>).value]),
  );
}
