/**
 * Conformance of the ADS server to docs/architecture.md §7, with a generated client acting as
 * Envoy, over SotW and Delta. Each test names the rule it shows.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { status } from '@grpc/grpc-js';
import { TypeUrl } from '../../src/xds/types.js';
import {
  connectDelta,
  connectSotw,
  type DeltaEnvoy,
  type Received,
  type SotwEnvoy,
} from '../helpers/fake-envoy.js';
import { startXds, metricValue, type XdsHarness } from '../helpers/xds-harness.js';
import {
  edsCluster,
  endpoints,
  httpListener,
  route,
  secret,
  tcpListener,
} from '../helpers/resources.js';

let h: XdsHarness;
beforeEach(async () => {
  h = await startXds();
});
afterEach(async () => {
  await h.close();
});

const names = (r: Received<unknown>) => r.resources.map((x) => x.name);

/** Rule 11 on every response: no duplicate names, every resource of the response's type. */
function checkShape(r: Received<unknown>): void {
  expect(new Set(names(r)).size).toBe(r.resources.length);
  const typeName = r.typeUrl.slice(r.typeUrl.lastIndexOf('/') + 1);
  for (const res of r.resources) expect(res.message.$type).toBe(typeName);
}

function basicView(nodeId: string, port = 9000) {
  h.cache.setProxyResources(nodeId, [
    edsCluster('a'),
    endpoints('a', [port]),
    tcpListener('l1', 10001, 'a'),
  ]);
}

describe.each(['sotw', 'delta'] as const)('ADS %s', (api) => {
  const connect = (nodeId: string) =>
    api === 'sotw' ? connectSotw(h.client, nodeId) : connectDelta(h.client, nodeId);
  /** Subscribe to a type: SotW with resource names, Delta with subscribe lists. */
  const subscribe = (e: SotwEnvoy | DeltaEnvoy, typeUrl: string, subs: readonly string[]) =>
    e instanceof SotwEnvoy_
      ? e.request(typeUrl, subs)
      : (e as DeltaEnvoy).send(typeUrl, { subscribe: subs });
  const ack = async (e: SotwEnvoy | DeltaEnvoy) => {
    const r = await e.next();
    checkShape(r);
    (e as SotwEnvoy).ack(r as never);
    return r;
  };

  it('rule 1: a request without type_url gets INVALID_ARGUMENT', async () => {
    basicView('n1');
    const e = connect('n1');
    subscribe(e, '', []);
    const s = await e.ended;
    expect(s.code).toBe(status.INVALID_ARGUMENT);
    expect(s.details).toContain('type_url');
  });

  it('rule 2: a first request without node.id gets INVALID_ARGUMENT; later requests may omit node', async () => {
    const bad = api === 'sotw' ? connectSotw(h.client, '') : connectDelta(h.client, '');
    subscribe(bad, TypeUrl.cluster, []);
    expect((await bad.ended).code).toBe(status.INVALID_ARGUMENT);

    basicView('n1');
    const e = connect('n1');
    subscribe(e, TypeUrl.cluster, []); // carries node
    await ack(e); // ACK carries no node
    subscribe(e, TypeUrl.endpoint, ['a']); // no node either
    expect(names(await e.next())).toEqual(['a']);
    e.close();
  });

  it('rule 6: an empty first request is a wildcard; `*` is an explicit wildcard', async () => {
    h.cache.setProxyResources('n1', [
      edsCluster('a'),
      endpoints('a', [1]),
      edsCluster('b'),
      endpoints('b', [2]),
    ]);
    const e = connect('n1');
    subscribe(e, TypeUrl.cluster, []);
    expect(names(await ack(e))).toEqual(['a', 'b']);
    const e2 = connect('n1');
    subscribe(e2, TypeUrl.cluster, ['*']);
    expect(names(await ack(e2))).toEqual(['a', 'b']);
    e.close();
    e2.close();
  });

  it('rule 6: the legacy wildcard ends at the first explicit subscription', async () => {
    h.cache.setProxyResources('n1', [secret('s1'), secret('s2')]);
    const e = connect('n1');
    subscribe(e, TypeUrl.secret, []);
    expect(names(await ack(e))).toEqual(['s1', 's2']);
    if (e instanceof SotwEnvoy_) e.request(TypeUrl.secret, ['s1'], { nonce: e.lastNonce() });
    else (e as DeltaEnvoy).send(TypeUrl.secret, { subscribe: ['s1'] });
    // A new secret is outside the (now explicit) subscription; a change to s1 is inside it.
    h.cache.setProxyResources('n1', [secret('s1', 'changed'), secret('s2'), secret('s3')]);
    const r = await e.next();
    expect(names(r)).toEqual(['s1']);
    e.close();
  });

  it('rule 7: a name subscribed before it exists is sent when it appears (Delta: removed first)', async () => {
    h.cache.setProxyResources('n1', [secret('s1')]);
    const e = connect('n1');
    subscribe(e, TypeUrl.secret, ['later']);
    if (api === 'delta') {
      const r = await ack(e);
      expect(r.removed).toEqual(['later']);
      expect(r.resources).toEqual([]);
    }
    h.cache.setProxyResources('n1', [secret('s1'), secret('later')]);
    const r2 = await ack(e);
    expect(names(r2)).toEqual(['later']);
    e.close();
  });

  it('rule 5: a NACK is recorded, the same content is never re-sent, the next content is', async () => {
    h.cache.setProxyResources('n1', [secret('s1', 'good')]);
    const e = connect('n1');
    subscribe(e, TypeUrl.secret, ['s1']);
    await ack(e);
    h.cache.setProxyResources('n1', [secret('s1', 'bad')]);
    const bad = await e.next();
    (e as SotwEnvoy).nack(bad as never, 'certificate is malformed');
    // Unrelated change for the proxy: must not bring back the rejected secret.
    h.cache.setProxyResources('n1', [secret('s1', 'bad'), edsCluster('x'), endpoints('x', [1])]);
    expect(await e.quietFor(300)).toBe(true);
    await waitUntil(
      async () =>
        (await metricValue(h.metrics, 'isthmus_xds_rejects_total', { type: 'SDS' })) === 1,
    );
    const st = h.server.proxyStatus().find((p) => p.ID === 'n1')!;
    expect(st.Types.SDS).toMatchObject({
      status: 'ERROR',
      lastNack: { message: 'certificate is malformed' },
    });
    expect(st.Resources.find((r) => r.Name === 's1')).toMatchObject({
      Status: 'ERROR',
      Error: 'certificate is malformed',
    });
    h.cache.setProxyResources('n1', [secret('s1', 'fixed')]);
    const fixed = await ack(e);
    expect(names(fixed)).toEqual(['s1']);
    expect(fixed.resources[0]!.version).not.toBe(bad.resources[0]!.version);
    await waitUntil(
      () => h.server.proxyStatus().find((p) => p.ID === 'n1')?.Types.SDS?.status === 'SYNCED',
    );
    // The ACK of the fixed version clears the resource's error state.
    expect(
      h.server
        .proxyStatus()
        .find((p) => p.ID === 'n1')!
        .Resources.find((r) => r.Name === 's1')!.Error,
    ).toBeUndefined();
    e.close();
  });

  it('rule 9: a cluster + listener change is pushed SDS, CDS, EDS, LDS, RDS with removals last', async () => {
    h.cache.setProxyResources('n1', [
      edsCluster('old'),
      endpoints('old', [1]),
      tcpListener('l1', 10001, 'old'),
    ]);
    const e = connect('n1');
    subscribe(e, TypeUrl.cluster, []);
    await ack(e);
    subscribe(e, TypeUrl.endpoint, ['old']);
    await ack(e);
    subscribe(e, TypeUrl.listener, []);
    await ack(e);
    subscribe(e, TypeUrl.secret, []);
    await ack(e);
    subscribe(e, TypeUrl.route, []);
    await ack(e);
    // Swap the listener to a new HTTP cluster behind a route, with a new secret.
    h.cache.setProxyResources('n1', [
      secret('cert'),
      edsCluster('new', { secret: 'cert' }),
      endpoints('new', [2]),
      httpListener('l1', 10001, 'r1'),
      route('r1', 'new'),
    ]);
    // Drive the client like Envoy: ACK everything; after applying CDS, subscribe to the endpoints
    // of the clusters it holds (and drop the rest).
    const order: string[] = [];
    let edsNames = ['old'];
    for (;;) {
      let r: Received<unknown>;
      try {
        r = await e.next(1_500);
      } catch {
        break; // quiet: everything was pushed
      }
      checkShape(r);
      order.push(`${short(r.typeUrl)}${r.removed.length ? '-' : '+'}`);
      (e as SotwEnvoy).ack(r as never);
      if (r.typeUrl !== TypeUrl.cluster) continue;
      const held = [...(e.held.get(TypeUrl.cluster)?.keys() ?? [])].sort();
      if (e instanceof SotwEnvoy_)
        e.request(TypeUrl.endpoint, held, { nonce: e.lastNonceOf(TypeUrl.endpoint) });
      else {
        const added = held.filter((n) => !edsNames.includes(n));
        const gone = edsNames.filter((n) => !held.includes(n));
        (e as DeltaEnvoy).send(TypeUrl.endpoint, { subscribe: added, unsubscribe: gone });
      }
      edsNames = held;
    }
    if (api === 'delta') {
      expect(order).toEqual(['SDS+', 'CDS+', 'EDS+', 'LDS+', 'RDS+', 'EDS-', 'CDS-']);
    } else {
      // SotW keeps "old" in the first CDS (full state) and drops it after the listener moved.
      expect(order).toEqual(['SDS+', 'CDS+', 'EDS+', 'LDS+', 'RDS+', 'CDS+']);
    }
    expect([...e.held.get(TypeUrl.cluster)!.keys()]).toEqual(['new']);
    e.close();
  });

  it('rule 9: a changed cluster gets its (unchanged) endpoints re-sent', async () => {
    basicView('n1');
    const e = connect('n1');
    subscribe(e, TypeUrl.cluster, []);
    await ack(e);
    subscribe(e, TypeUrl.endpoint, ['a']);
    const eds1 = await ack(e);
    h.cache.setProxyResources('n1', [
      edsCluster('a', { timeoutSeconds: 9 }),
      endpoints('a', [9000]),
      tcpListener('l1', 10001, 'a'),
    ]);
    const cds = await ack(e);
    expect(short(cds.typeUrl)).toBe('CDS');
    const eds2 = await ack(e);
    expect(short(eds2.typeUrl)).toBe('EDS');
    expect(names(eds2)).toEqual(['a']);
    expect(eds2.resources[0]!.message).toEqual(eds1.resources[0]!.message);
    e.close();
  });

  it('rule 9: endpoints do not wait for the CDS ACK, which Envoy withholds while a new or changed cluster warms', async () => {
    basicView('n1');
    const e = connect('n1');
    subscribe(e, TypeUrl.cluster, []);
    await ack(e);
    subscribe(e, TypeUrl.endpoint, ['a']);
    await ack(e);
    subscribe(e, TypeUrl.listener, []);
    await ack(e);
    // Cluster a changes, cluster b is new and a new listener routes to it.
    h.cache.setProxyResources('n1', [
      edsCluster('a', { timeoutSeconds: 9 }),
      endpoints('a', [9000]),
      edsCluster('b'),
      endpoints('b', [9001]),
      tcpListener('l1', 10001, 'a'),
      tcpListener('l2', 10002, 'b'),
    ]);
    const cds = await e.next();
    expect(short(cds.typeUrl)).toBe('CDS');
    // Like a running Envoy: apply the clusters, subscribe to b's endpoints, and keep the CDS ACK
    // until both clusters are warm, i.e. have their endpoints (a's re-sent, as it changed).
    if (e instanceof SotwEnvoy_)
      e.request(TypeUrl.endpoint, ['a', 'b'], { nonce: e.lastNonceOf(TypeUrl.endpoint) });
    else (e as DeltaEnvoy).send(TypeUrl.endpoint, { subscribe: ['b'] });
    const warm = new Set<string>();
    while (!(warm.has('a') && warm.has('b'))) {
      const eds = await ack(e);
      expect(short(eds.typeUrl)).toBe('EDS');
      for (const name of names(eds)) warm.add(name);
    }
    // Nothing that names the clusters goes before their ACK...
    expect(await e.quietFor(200)).toBe(true);
    (e as SotwEnvoy).ack(cds as never);
    // ...and then the listener does.
    const lds = await ack(e);
    expect(short(lds.typeUrl)).toBe('LDS');
    expect(names(lds)).toContain('l2');
    e.close();
  });

  it('backpressure: without an ACK nothing more is sent for the type, then the latest content wins', async () => {
    h.cache.setProxyResources('n1', [secret('s1', 'v1')]);
    const e = connect('n1');
    subscribe(e, TypeUrl.secret, ['s1']);
    const first = await e.next(); // not ACKed yet
    for (const v of ['v2', 'v3', 'v4']) h.cache.setProxyResources('n1', [secret('s1', v)]);
    expect(await e.quietFor(200)).toBe(true);
    (e as SotwEnvoy).ack(first as never);
    const latest = await ack(e);
    expect(JSON.stringify(latest.resources[0]!.message)).toContain('v4');
    expect(await e.quietFor(200)).toBe(true);
    e.close();
  });

  it('rule 12: versions are content hashes, equal on another server for equal content', async () => {
    const other = await startXds();
    try {
      basicView('n1');
      other.cache.setProxyResources('n1', [
        edsCluster('a'),
        endpoints('a', [9000]),
        tcpListener('l1', 10001, 'a'),
      ]);
      const e1 = connect('n1');
      const e2 =
        api === 'sotw' ? connectSotw(other.client, 'n1') : connectDelta(other.client, 'n1');
      subscribe(e1, TypeUrl.cluster, []);
      subscribe(e2, TypeUrl.cluster, []);
      const [r1, r2] = [await e1.next(), await e2.next()];
      expect(r1.versionInfo).toBe(r2.versionInfo);
      expect(r1.resources.map((r) => r.version)).toEqual(r2.resources.map((r) => r.version));
      e1.close();
      e2.close();
    } finally {
      await other.close();
    }
  });

  it('CSDS and /v1/xds/proxies: one entry per resource with its sync status', async () => {
    basicView('n1');
    const e = connect('n1');
    subscribe(e, TypeUrl.cluster, []);
    await ack(e);
    subscribe(e, TypeUrl.endpoint, ['a']);
    await e.next(); // not ACKed: STALE
    await waitUntil(
      () => h.server.proxyStatus().find((p) => p.ID === 'n1')?.Types.CDS?.status === 'SYNCED',
    );
    const st = h.server.proxyStatus().find((p) => p.ID === 'n1')!;
    expect(st.API).toBe(api);
    expect(st.Types.EDS!.status).toBe('STALE');
    expect(st.Types.LDS!.status).toBe('NOT_SENT');
    e.close();
  });
});

// Helpers local to this file.
import { SotwEnvoy as SotwEnvoy_ } from '../helpers/fake-envoy.js';
const short = (t: string) =>
  ({
    [TypeUrl.secret]: 'SDS',
    [TypeUrl.cluster]: 'CDS',
    [TypeUrl.endpoint]: 'EDS',
    [TypeUrl.listener]: 'LDS',
    [TypeUrl.route]: 'RDS',
  })[t] ?? t;
async function waitUntil(cond: () => boolean | Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
