/**
 * Protocol-specific ADS rules (docs/architecture.md §7) that differ between SotW and Delta, plus
 * stream admission, CSDS over gRPC and shutdown.
 */
import { afterEach, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { IsthmusError } from '../../src/errors.js';
import {
  ClientStatusDiscoveryServiceClient,
  ConfigStatus,
} from '../../src/gen/envoy/service/status/v3/csds.js';
import { TypeUrl } from '../../src/xds/types.js';
import { connectDelta, connectSotw, type Received } from '../helpers/fake-envoy.js';
import { metricValue, startXds, type XdsHarness } from '../helpers/xds-harness.js';
import { edsCluster, endpoints, secret, tcpListener } from '../helpers/resources.js';

let h: XdsHarness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});
async function harness(opts: Parameters<typeof startXds>[0] = {}): Promise<XdsHarness> {
  h = await startXds(opts);
  return h;
}
const names = (r: Received<unknown>) => r.resources.map((x) => x.name).sort();

describe('SotW', () => {
  it('rule 4: a request with a stale nonce is ignored', async () => {
    const { cache, client } = await harness();
    cache.setProxyResources('n', [secret('a', '1'), secret('b')]);
    const e = connectSotw(client, 'n');
    e.request(TypeUrl.secret, ['a']);
    const r1 = await e.next();
    e.ack(r1);
    cache.setProxyResources('n', [secret('a', '2'), secret('b')]);
    const r2 = await e.next();
    // Answers r1 although r2 was sent: stale, so its new subscription to "b" is ignored.
    e.request(TypeUrl.secret, ['a', 'b'], { nonce: r1.nonce, versionInfo: r1.versionInfo });
    expect(await e.quietFor(300)).toBe(true);
    e.request(TypeUrl.secret, ['a', 'b'], { nonce: r2.nonce, versionInfo: r2.versionInfo });
    expect(names(await e.next())).toEqual(['b']);
    e.close();
  });

  it('an ACK that names other resources changes the subscription; one that names the same changes nothing', async () => {
    const { cache, client } = await harness();
    cache.setProxyResources('n', [secret('a', '1'), secret('b', '1'), secret('c', '1')]);
    const e = connectSotw(client, 'n');
    e.request(TypeUrl.secret, ['a', 'b']);
    const first = await e.next();
    expect(names(first)).toEqual(['a', 'b']);
    e.ack(first); // the same names: nothing is sent
    expect(await e.quietFor(200)).toBe(true);
    e.ack(first, ['a', 'b', 'c']); // the ACK adds "c"
    const withC = await e.next();
    expect(names(withC)).toEqual(['c']);
    // Three names, but one of them twice: "b" is no longer subscribed, so its change is not sent.
    e.ack(withC, ['a', 'a', 'c']);
    expect(await e.quietFor(200)).toBe(true);
    cache.setProxyResources('n', [secret('a', '2'), secret('b', '2'), secret('c', '2')]);
    expect(names(await e.next())).toEqual(['a', 'c']);
    e.close();
  });

  it('rule 8: CDS is full state (removal by omission); EDS carries only what changed', async () => {
    const { cache, client } = await harness();
    const both = [edsCluster('a'), endpoints('a', [1]), edsCluster('b'), endpoints('b', [2])];
    cache.setProxyResources('n', both);
    const e = connectSotw(client, 'n');
    e.request(TypeUrl.cluster, []);
    e.ack(await e.next());
    e.request(TypeUrl.endpoint, ['a', 'b'], { nonce: e.lastNonceOf(TypeUrl.cluster) });
    const eds = await e.next();
    expect(names(eds)).toEqual(['a', 'b']);
    e.ack(eds);
    cache.setProxyResources('n', [
      edsCluster('a'),
      endpoints('a', [1]),
      edsCluster('b'),
      endpoints('b', [3]),
    ]);
    const edsChange = await e.next();
    expect(edsChange.typeUrl).toBe(TypeUrl.endpoint);
    expect(names(edsChange)).toEqual(['b']);
    e.ack(edsChange);
    cache.setProxyResources('n', [edsCluster('a'), endpoints('a', [1])]);
    const cds = await e.next();
    expect(cds.typeUrl).toBe(TypeUrl.cluster);
    expect(names(cds)).toEqual(['a']);
    e.close();
  });

  it('rule 12: a reconnecting client that holds the current version gets nothing re-sent', async () => {
    const { cache, client } = await harness();
    cache.setProxyResources('n', [edsCluster('a'), endpoints('a', [1])]);
    const e1 = connectSotw(client, 'n');
    e1.request(TypeUrl.cluster, []);
    const r = await e1.next();
    e1.close();
    const e2 = connectSotw(client, 'n');
    e2.request(TypeUrl.cluster, [], { versionInfo: r.versionInfo });
    expect(await e2.quietFor(300)).toBe(true);
    cache.setProxyResources('n', [edsCluster('a', { timeoutSeconds: 7 }), endpoints('a', [1])]);
    const changed = await e2.next();
    expect(changed.versionInfo).not.toBe(r.versionInfo);
    e2.close();
  });

  it('a reconnect subscribing by name is answered even with a matching version_info', async () => {
    const { cache, client } = await harness();
    cache.setProxyResources('n', [secret('a')]);
    const e1 = connectSotw(client, 'n');
    e1.request(TypeUrl.secret, ['a']);
    const r = await e1.next();
    e1.close();
    // grpc-js-xds keeps its per-type version after dropping its cache: answer named requests
    // anyway.
    const e2 = connectSotw(client, 'n');
    e2.request(TypeUrl.secret, ['a'], { versionInfo: r.versionInfo });
    expect(names(await e2.next())).toEqual(['a']);
    e2.close();
  });

  it('a removed proxy gets empty CDS and LDS (full state)', async () => {
    const { cache, client } = await harness();
    cache.setProxyResources('n', [
      edsCluster('a'),
      endpoints('a', [1]),
      tcpListener('l', 10000, 'a'),
    ]);
    const e = connectSotw(client, 'n');
    e.request(TypeUrl.cluster, []);
    e.ack(await e.next());
    e.request(TypeUrl.listener, [], { nonce: e.lastNonce() });
    e.ack(await e.next());
    cache.removeProxy('n');
    const seen: string[] = [];
    for (let i = 0; i < 2; i++) {
      const r = await e.next();
      expect(r.resources).toEqual([]);
      seen.push(r.typeUrl);
      e.ack(r);
    }
    // Removals last and in dependency order: the listener goes before the cluster it used.
    expect(seen).toEqual([TypeUrl.listener, TypeUrl.cluster]);
    e.close();
  });
});

describe('Delta', () => {
  it('rule 4: subscription changes apply whatever the nonce', async () => {
    const { cache, client } = await harness();
    cache.setProxyResources('n', [secret('a'), secret('b')]);
    const e = connectDelta(client, 'n');
    e.send(TypeUrl.secret, { subscribe: ['a'] });
    e.ack(await e.next());
    e.send(TypeUrl.secret, { subscribe: ['b'], nonce: 'not-a-nonce-we-sent' });
    expect(names(await e.next())).toEqual(['b']);
    e.close();
  });

  it('rule 10: a reconnect diffs against initial_resource_versions and removes what is gone', async () => {
    const { cache, client } = await harness();
    cache.setProxyResources('n', [secret('keep'), secret('change', 'v1'), secret('gone')]);
    const e1 = connectDelta(client, 'n');
    e1.send(TypeUrl.secret, { subscribe: ['*'] });
    const first = await e1.next();
    e1.ack(first);
    const held = Object.fromEntries(first.resources.map((r) => [r.name, r.version]));
    e1.close();
    cache.setProxyResources('n', [secret('keep'), secret('change', 'v2'), secret('new')]);
    const e2 = connectDelta(client, 'n');
    e2.send(TypeUrl.secret, { subscribe: ['*'], initial: held });
    const upserts = await e2.next();
    expect(names(upserts)).toEqual(['change', 'new']);
    e2.ack(upserts);
    const removals = await e2.next();
    expect(removals.removed).toEqual(['gone']);
    e2.close();
  });

  /** ACKs every response until the stream is quiet for `quietMs`; returns them in order. */
  async function settleDelta(
    e: ReturnType<typeof connectDelta>,
    quietMs = 300,
  ): Promise<Received<unknown>[]> {
    const got: Received<unknown>[] = [];
    for (;;) {
      let r: Awaited<ReturnType<typeof e.next>>;
      try {
        r = await e.next(quietMs);
      } catch {
        return got;
      }
      got.push(r);
      e.ack(r);
    }
  }

  it("a push to many proxies carries what changed, within each one's subscription", async () => {
    const { cache, client } = await harness();
    const view = (port: number) => [
      endpoints('a', [port]),
      endpoints('b', [1]),
      endpoints('c', [port]),
    ];
    const ids = ['n0', 'n1', 'n2'];
    for (const id of ids) cache.setProxyResources(id, view(1));
    const streams = ids.map((id) => connectDelta(client, id));
    streams[0]!.send(TypeUrl.endpoint, { subscribe: ['*'] });
    streams[1]!.send(TypeUrl.endpoint, { subscribe: ['a', 'b'] });
    streams[2]!.send(TypeUrl.endpoint, { subscribe: ['b'] });
    for (const e of streams) await settleDelta(e);
    for (let port = 2; port <= 3; port++) {
      for (const id of ids) cache.setProxyResources(id, view(port));
      const got = await Promise.all(streams.map((e) => settleDelta(e)));
      expect(got.map((rs) => rs.flatMap((r) => r.resources.map((x) => x.name)))).toEqual([
        ['a', 'c'],
        ['a'],
        [],
      ]);
    }
    for (const e of streams) e.close();
  });

  it('endpoints that go back to earlier names after a detour remove what the detour added', async () => {
    const { cache, client } = await harness({ warmingTimeoutMs: 10_000 });
    const before = [
      edsCluster('c'),
      endpoints('c', [1]),
      endpoints('e1', [1]),
      tcpListener('l', 10000, 'c'),
    ];
    for (const id of ['n1', 'n2']) cache.setProxyResources(id, before);
    const e = connectDelta(client, 'n1');
    e.send(TypeUrl.cluster, { subscribe: ['*'] });
    e.send(TypeUrl.endpoint, { subscribe: ['c', 'e1', 'b'] });
    e.send(TypeUrl.listener, { subscribe: ['*'] });
    await settleDelta(e);
    // The detour: endpoints "b" appear (and are sent) while a new cluster's endpoints hold the
    // listener back.
    cache.setProxyResources('n1', [
      edsCluster('c'),
      edsCluster('c2'),
      endpoints('c', [1]),
      endpoints('e1', [1]),
      endpoints('b', [1]),
      endpoints('c2', [1]),
      tcpListener('l', 10000, 'c2'),
    ]);
    const detour = await settleDelta(e);
    expect(detour.flatMap((r) => r.resources.map((x) => x.name))).toContain('b');
    // Back to the first names (as another proxy publishes them first, so the Map is shared).
    const after = [
      edsCluster('c'),
      endpoints('c', [2]),
      endpoints('e1', [1]),
      tcpListener('l', 10000, 'c'),
    ];
    cache.setProxyResources('n2', after);
    cache.setProxyResources('n1', after);
    const back = await settleDelta(e);
    const eds = back.filter((r) => r.typeUrl === TypeUrl.endpoint);
    expect(eds.flatMap((r) => r.resources.map((x) => x.name))).toEqual(['c']);
    expect(eds.flatMap((r) => r.removed)).toEqual(['b']);
    e.close();
  });

  it('unsubscribed names are no longer sent', async () => {
    const { cache, client } = await harness();
    cache.setProxyResources('n', [secret('a'), secret('b')]);
    const e = connectDelta(client, 'n');
    e.send(TypeUrl.secret, { subscribe: ['a', 'b'] });
    e.ack(await e.next());
    e.send(TypeUrl.secret, { unsubscribe: ['a'] });
    cache.setProxyResources('n', [secret('a', 'x'), secret('b', 'y')]);
    const r = await e.next();
    expect(names(r)).toEqual(['b']);
    e.close();
  });

  it('rule 14: a large response is split into several, each under the limit', async () => {
    const { cache, client } = await harness({ maxResponseBytes: 2_000 });
    const many = Array.from({ length: 60 }, (_, i) =>
      secret(`s${String(i).padStart(2, '0')}`, 'x'.repeat(100)),
    );
    cache.setProxyResources('n', many);
    const e = connectDelta(client, 'n');
    e.send(TypeUrl.secret, { subscribe: ['*'] });
    const got = new Set<string>();
    let responses = 0;
    while (got.size < 60) {
      const r = await e.next();
      responses++;
      expect(
        Buffer.byteLength(JSON.stringify(r.raw.resources.map((x) => x.resource?.value.length))),
      ).toBeGreaterThan(0);
      expect(
        r.raw.resources.reduce((acc, x) => acc + (x.resource?.value.length ?? 0), 0),
      ).toBeLessThanOrEqual(2_000);
      for (const n of names(r)) got.add(n);
      e.ack(r);
    }
    expect(responses).toBeGreaterThan(1);
    e.close();
  });
});

describe('stream admission, CSDS and shutdown', () => {
  it('streams beyond the cap get RESOURCE_EXHAUSTED; the first keeps working', async () => {
    const { cache, client, metrics } = await harness({ maxStreams: 1 });
    cache.setProxyResources('n', [secret('a')]);
    const e1 = connectDelta(client, 'n');
    e1.send(TypeUrl.secret, { subscribe: ['a'] });
    e1.ack(await e1.next());
    const e2 = connectDelta(client, 'm');
    e2.send(TypeUrl.secret, { subscribe: ['a'] });
    const s = await e2.ended;
    expect(s.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(s.details).toContain('--xds-max-streams');
    expect(
      await metricValue(metrics, 'isthmus_xds_streams_refused_total', { reason: 'limit' }),
    ).toBe(1);
    cache.setProxyResources('n', [secret('a', 'changed')]);
    expect(names(await e1.next())).toEqual(['a']);
    e1.close();
  });

  it('a stream the authorizer refuses gets PERMISSION_DENIED and no resource', async () => {
    const { cache, client } = await harness({
      authorize: (nodeId, md) => {
        if (md.get('x-isthmus-token')[0] !== `token-for-${nodeId}`) {
          throw new IsthmusError('permission_denied', `token does not grant node ${nodeId}`);
        }
      },
    });
    cache.setProxyResources('n', [secret('a')]);
    const md = new grpc.Metadata();
    md.set('x-isthmus-token', 'token-for-someone-else');
    const e = connectSotw(client, 'n', md);
    e.request(TypeUrl.secret, ['a']);
    const s = await e.ended;
    expect(s.code).toBe(grpc.status.PERMISSION_DENIED);
    await expect(e.next(100)).rejects.toThrow(/no response/);
    const ok = new grpc.Metadata();
    ok.set('x-isthmus-token', 'token-for-n');
    const e2 = connectSotw(client, 'n', ok);
    e2.request(TypeUrl.secret, ['a']);
    expect(names(await e2.next())).toEqual(['a']);
    e2.close();
  });

  it('CSDS FetchClientStatus filters by node id and reports per-resource status', async () => {
    const { cache, client, address } = await harness();
    cache.setProxyResources('web-1', [secret('a')]);
    cache.setProxyResources('db-1', [secret('b')]);
    const e1 = connectDelta(client, 'web-1');
    e1.send(TypeUrl.secret, { subscribe: ['a'] });
    e1.ack(await e1.next());
    const e2 = connectDelta(client, 'db-1');
    e2.send(TypeUrl.secret, { subscribe: ['b'] });
    await e2.next(); // not ACKed
    const csds = new ClientStatusDiscoveryServiceClient(address, grpc.credentials.createInsecure());
    try {
      const fetch = (prefix: string) =>
        new Promise<import('../../src/gen/envoy/service/status/v3/csds.js').ClientStatusResponse>(
          (resolve, reject) =>
            csds.fetchClientStatus(
              {
                nodeMatchers: [
                  {
                    nodeId: { matchPattern: { $case: 'prefix', value: prefix }, ignoreCase: false },
                    nodeMetadatas: [],
                  },
                ],
                excludeResourceContents: false,
              },
              (err, res) => (err ? reject(err) : resolve(res!)),
            ),
        );
      let web = await fetch('web-');
      for (
        let i = 0;
        i < 50 && web.config[0]?.genericXdsConfigs[0]?.configStatus !== ConfigStatus.SYNCED;
        i++
      ) {
        await new Promise((r) => setTimeout(r, 20));
        web = await fetch('web-');
      }
      expect(web.config.map((c) => c.node?.id)).toEqual(['web-1']);
      expect(web.config[0]!.genericXdsConfigs[0]).toMatchObject({
        name: 'a',
        typeUrl: TypeUrl.secret,
        configStatus: ConfigStatus.SYNCED,
      });
      expect(web.config[0]!.genericXdsConfigs[0]!.xdsConfig?.typeUrl).toBe(TypeUrl.secret);
      const db = await fetch('db-');
      expect(db.config[0]!.genericXdsConfigs[0]).toMatchObject({
        name: 'b',
        configStatus: ConfigStatus.STALE,
      });
    } finally {
      csds.close();
      e1.close();
      e2.close();
    }
  });

  it('stream gauges follow open streams; shutdown ends streams with UNAVAILABLE', async () => {
    const { cache, client, metrics, server } = await harness();
    cache.setProxyResources('n', [secret('a')]);
    const e = connectSotw(client, 'n');
    e.request(TypeUrl.secret, ['a']);
    e.ack(await e.next());
    expect(await metricValue(metrics, 'isthmus_xds_streams', { api: 'sotw' })).toBe(1);
    expect(await metricValue(metrics, 'isthmus_xds_pushes_total', { type: 'SDS' })).toBe(1);
    await server.shutdown(2_000);
    expect((await e.ended).code).toBe(grpc.status.UNAVAILABLE);
    expect(await metricValue(metrics, 'isthmus_xds_streams', { api: 'sotw' })).toBe(0);
  });
});

describe('Delta before the proxy is known', () => {
  it('rule 7: a name subscribed before the view exists is reported removed once the view arrives', async () => {
    const { cache, client } = await harness();
    const e = connectDelta(client, 'late');
    e.send(TypeUrl.secret, { subscribe: ['missing', 'present'] });
    expect(await e.quietFor(200)).toBe(true); // nothing is known about the proxy yet
    cache.setProxyResources('late', [secret('present')]);
    const up = await e.next();
    expect(names(up)).toEqual(['present']);
    e.ack(up);
    const rm = await e.next();
    expect(rm.removed).toEqual(['missing']);
    e.close();
  });
});

describe('cluster warming', () => {
  it('listeners wait for the endpoints of new clusters, and go out anyway after the warming timeout', async () => {
    const { cache, client } = await harness({ warmingTimeoutMs: 300 });
    cache.setProxyResources('n', [
      edsCluster('a'),
      endpoints('a', [1]),
      tcpListener('l', 10000, 'a'),
    ]);
    const e = connectDelta(client, 'n');
    e.send(TypeUrl.cluster, { subscribe: ['*'] });
    e.send(TypeUrl.listener, { subscribe: ['*'] });
    const cds = await e.next();
    expect(cds.typeUrl).toBe(TypeUrl.cluster);
    e.ack(cds);
    // The client has not subscribed to endpoints "a": the listener is held back...
    expect(await e.quietFor(150)).toBe(true);
    // ...until it does, and the endpoints went out first.
    e.send(TypeUrl.endpoint, { subscribe: ['a'] });
    const eds = await e.next();
    expect(eds.typeUrl).toBe(TypeUrl.endpoint);
    e.ack(eds);
    expect((await e.next()).typeUrl).toBe(TypeUrl.listener);
    e.close();

    // A client that never asks for endpoints still gets its listener after the timeout.
    const e2 = connectDelta(client, 'n');
    e2.send(TypeUrl.cluster, { subscribe: ['*'] });
    e2.send(TypeUrl.listener, { subscribe: ['*'] });
    e2.ack(await e2.next());
    expect((await e2.next(3_000)).typeUrl).toBe(TypeUrl.listener);
    e2.close();
  });
});
