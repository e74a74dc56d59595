/**
 * A resolver's hash policies and a router's case-insensitive match, for real (issue 16): one
 * cluster, every proxy a real Envoy. `web` calls `api` (three instances, each its own app) whose
 * `service-resolver` balances with `ring_hash` on the `x-user` header, and whose `service-router`
 * sends `/Admin` in any case to `admin`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { UpstreamReport } from '../../src/troubleshoot/upstream-checks.js';
import { cleanupProcesses } from '../helpers/process.js';
import { closeApps, type HttpResult, httpCall, listenPort, startApp } from './apps.js';
import {
  cleanupEnvoys,
  type EnvoyProcess,
  showEnvoyLogsOnFailure,
  skipWithoutEnvoy,
} from './harness.js';
import {
  eventually,
  type MeshProcess,
  startCluster,
  startPlacedProxy,
  waitAllSynced,
  withSidecar,
} from './mesh.js';

const instances = ['api-1', 'api-2', 'api-3'];
/**
 * Users whose requests are hashed. With three hosts on a ring of 1024 entries, every user landing
 * on one host has a probability of about 3 · (1/3)^24 ≈ 1e-11: "different values spread" cannot
 * fail by chance, while a route without `hash_policy` (Envoy then hashes nothing and picks at
 * random) fails "same value, same instance" at once.
 */
const users = Array.from({ length: 24 }, (_, i) => `user-${i}`);
const requestsPerUser = 8;

const appOf = (r: HttpResult) => (r.status === 200 ? (r.seen?.app ?? '?') : `HTTP ${r.status}`);

describe.skipIf(skipWithoutEnvoy())('hash policies and case-insensitive routes, real Envoy', () => {
  let dc: MeshProcess;
  let web: EnvoyProcess;
  let apiPort = 0;
  const envoys: Awaited<ReturnType<typeof startPlacedProxy>>[] = [];

  showEnvoyLogsOnFailure();

  beforeAll(async () => {
    dc = await startCluster('dc1');
    for (const name of ['api', 'admin'])
      await dc.putConfig({ Kind: 'service-defaults', Name: name, Protocol: 'http' });
    for (const id of instances) {
      const app = await startApp('http', id);
      await dc.register({ ...withSidecar('api', app.port, await listenPort()), ID: id });
    }
    const admin = await startApp('http', 'admin');
    await dc.register(withSidecar('admin', admin.port, await listenPort()));
    apiPort = await listenPort();
    await dc.register(
      withSidecar('web', await listenPort(), await listenPort(), [
        { DestinationName: 'api', LocalBindPort: apiPort },
      ]),
    );
    await dc.putConfig({
      Kind: 'service-resolver',
      Name: 'api',
      LoadBalancer: {
        Policy: 'ring_hash',
        HashPolicies: [{ Field: 'header', FieldValue: 'x-user' }],
      },
    });
    await dc.putConfig({
      Kind: 'service-router',
      Name: 'api',
      Routes: [
        {
          Match: { HTTP: { PathPrefix: '/Admin', CaseInsensitive: true } },
          Destination: { Service: 'admin' },
        },
      ],
    });
    const started = await Promise.all(
      [...instances, 'admin', 'web'].map((id) =>
        startPlacedProxy(dc, `${id}-sidecar-proxy`, { datacenter: 'dc1' }),
      ),
    );
    envoys.push(...started);
    web = started[started.length - 1]!.envoy;
  });

  afterAll(async () => {
    await cleanupEnvoys();
    await closeApps();
    await dc?.close();
    await cleanupProcesses();
  });

  it('every Envoy is LIVE with nothing rejected, and SYNCED', async () => {
    await waitAllSynced(envoys);
    // The ring is built over every instance before anything is measured: a host arriving later
    // would move some users.
    const td = await dc.trustDomain();
    await eventually(async () => {
      const hosts = (await web.clusters()).get(`api.default.dc1.internal.${td}`) ?? [];
      if (hosts.filter((h) => h.healthy).length !== instances.length)
        throw new Error(`api hosts in web's Envoy: ${JSON.stringify(hosts)}`);
    }, `web's Envoy with ${instances.length} healthy api hosts`);
  });

  it('every request with the same x-user goes to the same instance, and users spread', async () => {
    await eventually(async () => {
      const r = await httpCall(apiPort, '/', { headers: { 'x-user': 'probe' } });
      if (r.status !== 200) throw new Error(`HTTP ${r.status}`);
    }, 'web → api');
    const placement = new Map<string, Set<string>>();
    for (const user of users) {
      const seen = new Set<string>();
      for (let i = 0; i < requestsPerUser; i++)
        seen.add(appOf(await httpCall(apiPort, `/u/${i}`, { headers: { 'x-user': user } })));
      placement.set(user, seen);
    }
    const byUser = Object.fromEntries([...placement].map(([u, s]) => [u, [...s].join(',')]));
    const used = new Set([...placement.values()].flatMap((s) => [...s]));
    console.log(
      `ring_hash on x-user: ${users.length} users × ${requestsPerUser} requests → ${JSON.stringify(byUser)}`,
    );
    for (const [user, seen] of placement) expect([user, seen.size]).toEqual([user, 1]);
    expect([...used].every((a) => instances.includes(a))).toBe(true);
    expect(used.size).toBeGreaterThanOrEqual(2);
  });

  it('without the header nothing is hashed: Envoy picks at random, so several instances answer', async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 30; i++) seen.add(appOf(await httpCall(apiPort, '/anyone')));
    expect([...seen].every((a) => instances.includes(a))).toBe(true);
    expect(seen.size).toBeGreaterThanOrEqual(2);
  });

  it('the router sends /Admin in any case to admin, other paths to api', async () => {
    for (const path of ['/Admin/panel', '/ADMIN/panel', '/admin'])
      expect([path, appOf(await httpCall(apiPort, path))]).toEqual([path, 'admin']);
    expect(instances).toContain(appOf(await httpCall(apiPort, '/adm')));
  });

  it('troubleshoot upstream shows the routes and that each reaches a healthy target', async () => {
    const path = '/v1/troubleshoot/upstream/web-sidecar-proxy/api';
    const report = await eventually(async () => {
      const res = await dc.api<UpstreamReport>('GET', path);
      if (res.status !== 200 || !res.body.OK)
        throw new Error(`${res.status} ${JSON.stringify(res.body)}`);
      return res.body;
    }, 'troubleshoot upstream api');
    expect(report.Routes).toEqual([
      {
        Match: 'PathPrefix /Admin (any case)',
        Splits: [expect.objectContaining({ Target: 'admin.default.default.dc1', Healthy: 1 })],
      },
      {
        Match: '',
        Splits: [
          expect.objectContaining({
            Target: 'api.default.default.dc1',
            TrafficTo: 'api.default.default.dc1',
            Healthy: 3,
            Total: 3,
          }),
        ],
      },
    ]);
  });
});
