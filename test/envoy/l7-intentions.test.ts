/**
 * L7 intentions with real Envoys, locally and across a peering (docs/architecture.md §5
 * "Intentions → RBAC"). Cluster A runs `api` (HTTP) and a local `web`; cluster B's `web` calls A's
 * `api` through both mesh gateways (mode remote). A's mesh default is `deny` and `api`'s intentions
 * give both webs, by name and by peer, Permissions allowing GET under /allowed/ only: that passes,
 * any other method or path (a `..` walking out of /allowed/ included) gets Envoy's 403 and never
 * reaches the app. A changed intention holds
 * from the next request after the push.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MeshProcess, startMeshProcess } from '../helpers/mesh-server.js';
import { exportEntry, startPeeredMeshes } from '../helpers/peered-mesh.js';
import { cleanupProcesses } from '../helpers/process.js';
import { type App, closeApps, httpCall, listenPort, startApp } from './apps.js';
import {
  cleanupEnvoys,
  type EnvoyProcess,
  showEnvoyLogsOnFailure,
  skipWithoutEnvoy,
} from './harness.js';
import { eventually, meshGateway, startProxy, waitAllSynced, withSidecar } from './mesh.js';

type Caller = 'local' | 'peer';

/** `api`'s intentions: both webs get `permissions`. */
function apiIntentions(permissions: readonly unknown[]) {
  return {
    Kind: 'service-intentions',
    Name: 'api',
    Sources: [
      { Name: 'web', Permissions: permissions },
      { Name: 'web', Peer: 'cluster-b', Permissions: permissions },
    ],
  };
}
const getAllowed = { Action: 'allow', HTTP: { PathPrefix: '/allowed/', Methods: ['GET'] } };

describe.skipIf(skipWithoutEnvoy())('L7 intentions with real Envoys, local and peered', () => {
  let a: MeshProcess;
  let b: MeshProcess;
  let api: App;
  const envoys: { node: MeshProcess; envoy: EnvoyProcess }[] = [];
  const ports = new Map<Caller, number>();
  const call = (caller: Caller, path: string, method = 'GET', headers?: Record<string, string>) =>
    httpCall(ports.get(caller)!, path, { method, ...(headers && { headers }) });

  showEnvoyLogsOnFailure();

  beforeAll(async () => {
    ({ a, b } = await startPeeredMeshes({}, {}, startMeshProcess));
    await a.register(meshGateway('gw-a', await listenPort()));
    await b.register(meshGateway('gw-b', await listenPort()));
    api = await startApp('http', 'api');
    await a.putConfig({ Kind: 'service-defaults', Name: 'api', Protocol: 'http' });
    await a.register(withSidecar('api', api.port, await listenPort()));
    await a.putConfig(exportEntry({ api: ['cluster-b'] }));
    ports.set('local', await listenPort());
    ports.set('peer', await listenPort());
    const upstream = { DestinationName: 'api', LocalBindPort: ports.get('local') };
    await a.register(withSidecar('web', await listenPort(), await listenPort(), [upstream]));
    const peered = {
      DestinationName: 'api',
      DestinationPeer: 'cluster-a',
      LocalBindPort: ports.get('peer'),
      MeshGateway: { Mode: 'remote' },
    };
    await b.register(withSidecar('web', await listenPort(), await listenPort(), [peered]));
    await a.putConfig({ Kind: 'mesh', DefaultIntentionAction: 'deny' });
    await a.putConfig(apiIntentions([getAllowed]));
    const proxies = [
      [a, 'gw-a', 'mesh-gateway', 'dc-a'],
      [b, 'gw-b', 'mesh-gateway', 'dc-b'],
      [a, 'api-sidecar-proxy', 'connect-proxy', 'dc-a'],
      [a, 'web-sidecar-proxy', 'connect-proxy', 'dc-a'],
      [b, 'web-sidecar-proxy', 'connect-proxy', 'dc-b'],
    ] as const;
    envoys.push(
      ...(await Promise.all(
        proxies.map(async ([node, id, kind, datacenter]) => ({
          node,
          envoy: await startProxy(node, id, { kind, datacenter }),
        })),
      )),
    );
  });

  afterAll(async () => {
    await cleanupEnvoys();
    await closeApps();
    await Promise.all([a?.close(), b?.close()]);
    await cleanupProcesses();
  });

  it('every Envoy (two gateways, three sidecars) is LIVE with nothing rejected, and SYNCED', async () => {
    expect(envoys).toHaveLength(5);
    await waitAllSynced(envoys);
  });

  for (const caller of ['local', 'peer'] as const) {
    const who = caller === 'local' ? "A's web" : "B's web through both gateways";
    it(`${who}: GET /allowed/x passes; POST /allowed/x and GET /other get 403 and never reach the app`, async () => {
      const ok = await eventually(async () => {
        const res = await call(caller, '/allowed/x');
        expect(res.status).toBe(200);
        return res;
      }, `${caller} web → api GET /allowed/x`);
      expect(ok.seen).toMatchObject({ app: 'api', method: 'GET', path: '/allowed/x' });
      const before = api.seen.length;
      for (const [method, path] of [
        ['POST', '/allowed/x'],
        ['GET', '/other'],
        ['DELETE', '/allowed/'],
        ['GET', '/allowed'],
        // Normalized before the RBAC filter, so `..` cannot walk out of /allowed/.
        ['GET', '/allowed/../other'],
      ] as const) {
        const res = await call(caller, path, method);
        expect(res.status, `${method} ${path}`).toBe(403);
        expect(res.body, `${method} ${path}`).toMatch(/RBAC: access denied/);
      }
      expect(api.seen.length, 'requests that reached the app').toBe(before);
      expect((await call(caller, '/allowed/y?q=1')).status).toBe(200);
    });
  }

  it('a changed intention holds from the next request after the push, locally and from the peer', async () => {
    // A deny for requests carrying x-debug, before an allow that now also takes POST.
    await a.putConfig(
      apiIntentions([
        { Action: 'deny', HTTP: { Header: [{ Name: 'x-debug', Present: true }] } },
        { Action: 'allow', HTTP: { PathPrefix: '/allowed/', Methods: ['GET', 'POST'] } },
      ]),
    );
    for (const caller of ['local', 'peer'] as const) {
      await eventually(
        async () => expect((await call(caller, '/allowed/x', 'POST')).status).toBe(200),
        `${caller} web → api POST /allowed/x after the change`,
      );
      expect((await call(caller, '/allowed/x', 'GET', { 'x-debug': '1' })).status).toBe(403);
      expect((await call(caller, '/allowed/x', 'GET')).status).toBe(200);
      expect((await call(caller, '/other', 'POST')).status).toBe(403);
    }
    // Back to an L4 allow: every path and method passes again.
    await a.putConfig({
      Kind: 'service-intentions',
      Name: 'api',
      Sources: [
        { Name: 'web', Action: 'allow' },
        { Name: 'web', Peer: 'cluster-b', Action: 'allow' },
      ],
    });
    for (const caller of ['local', 'peer'] as const)
      await eventually(
        async () => expect((await call(caller, '/other', 'DELETE')).status).toBe(200),
        `${caller} web → api DELETE /other after the L4 allow`,
      );
  });
});
