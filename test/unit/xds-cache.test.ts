import { describe, expect, it } from 'vitest';
import { Metrics } from '../../src/metrics.js';
import { XdsCache } from '../../src/xds/cache/xds-cache.js';
import { TypeUrl } from '../../src/xds/types.js';
import {
  edsCluster,
  endpoints,
  httpListener,
  route,
  secret,
  tcpListener,
} from '../helpers/resources.js';
import { metricValue } from '../helpers/xds-harness.js';

const view = (port = 1) => [edsCluster('a'), endpoints('a', [port]), tcpListener('l', 10000, 'a')];

describe('XdsCache', () => {
  it('shares one encoded entry among 1,000 proxies with the same resource', () => {
    const cache = new XdsCache();
    const shared = view().map((m) => cache.encode(m));
    for (let i = 0; i < 1000; i++) cache.setProxyResources(`p${i}`, shared);
    expect(cache.entryCount).toBe(3);
    const a = cache.view('p1')!.resources.get(TypeUrl.cluster)!.get('a')!;
    const b = cache.view('p999')!.resources.get(TypeUrl.cluster)!.get('a')!;
    expect(a).toBe(b);
    expect(a.sotwField).toBe(b.sotwField); // the same bytes object, encoded once
  });

  it('proxies given the same endpoint move share its result; another move of as many endpoints is its own', () => {
    const cache = new XdsCache();
    const clusters = ['a', 'b', 'c'];
    const initial = [
      ...clusters.map((c) => cache.encode(edsCluster(c))),
      ...clusters.map((c) => cache.encode(endpoints(c, [1]))),
    ];
    for (let i = 0; i < 4; i++) cache.setProxyResources(`p${i}`, initial);
    const moveA = cache.encode(endpoints('a', [2]));
    const moveB = cache.encode(endpoints('b', [2]));
    for (const id of ['p0', 'p1', 'p2']) cache.updateProxyResources(id, { upsert: [moveA] });
    cache.updateProxyResources('p3', { upsert: [moveB] });
    const eds = (id: string) => cache.view(id)!.resources.get(TypeUrl.endpoint)!;
    expect(eds('p1')).toBe(eds('p0'));
    expect(eds('p2')).toBe(eds('p0'));
    expect(eds('p3')).not.toBe(eds('p0'));
    const versions = (id: string) => clusters.map((c) => eds(id).get(c)!.version);
    const before = clusters.map((c) => eds('p0').get(c)!.version);
    expect(versions('p1')).toEqual(before);
    expect(versions('p3')).toEqual([initial[3]!.version, moveB.version, initial[5]!.version]);
    expect(before).toEqual([moveA.version, initial[4]!.version, initial[5]!.version]);
  });

  it('counts encodes: publishing pre-encoded resources encodes nothing again', async () => {
    const metrics = new Metrics();
    const cache = new XdsCache(metrics);
    const shared = view().map((m) => cache.encode(m));
    for (let i = 0; i < 50; i++) cache.setProxyResources(`p${i}`, shared);
    expect(await metricValue(metrics, 'isthmus_xds_resource_encodes_total', { type: 'CDS' })).toBe(
      1,
    );
  });

  it('gives equal content an equal version in another cache (content hash)', () => {
    const v1 = new XdsCache()
      .setProxyResources('n', view())
      .resources.get(TypeUrl.endpoint)!
      .get('a')!.version;
    const v2 = new XdsCache()
      .setProxyResources('other', view())
      .resources.get(TypeUrl.endpoint)!
      .get('a')!.version;
    const v3 = new XdsCache()
      .setProxyResources('n', view(2))
      .resources.get(TypeUrl.endpoint)!
      .get('a')!.version;
    expect(v1).toBe(v2);
    expect(v3).not.toBe(v1);
  });

  it('refuses an inconsistent view, names each dangling reference, and keeps the last good one', () => {
    const cache = new XdsCache();
    const good = cache.setProxyResources('n', view());
    expect(() =>
      cache.setProxyResources('n', [
        edsCluster('a', { secret: 'leaf' }),
        httpListener('l', 10000, 'r1'),
      ]),
    ).toThrow(
      /Cluster "a" references ClusterLoadAssignment "a".*Cluster "a" references Secret "leaf".*Listener "l" references RouteConfiguration "r1"/,
    );
    expect(cache.view('n')).toBe(good);
  });

  it('accepts a view whose references all resolve (cluster → secret, listener → route)', () => {
    const cache = new XdsCache();
    const v = cache.setProxyResources('n', [
      secret('leaf'),
      edsCluster('a', { secret: 'leaf' }),
      endpoints('a', [1]),
      httpListener('l', 10000, 'r1'),
      route('r1', 'a'),
    ]);
    expect([...v.resources.keys()].length).toBe(5);
  });

  it('refuses duplicate names in one view', () => {
    const cache = new XdsCache();
    expect(() => cache.setProxyResources('n', [secret('s'), secret('s', 'b')])).toThrow(
      /duplicate SDS resource "s"/,
    );
    expect(cache.view('n')).toBeUndefined();
  });

  it('refuses a duplicate that would look like an unchanged type (same count as before)', () => {
    const cache = new XdsCache();
    const before = cache.setProxyResources('n', [secret('s'), secret('t')]);
    expect(() => cache.setProxyResources('n', [secret('s'), secret('s')])).toThrow(
      /duplicate SDS resource "s"/,
    );
    expect(cache.view('n')).toBe(before);
    expect(cache.setProxyResources('n', [secret('t'), secret('s')])).toBe(before); // same content, other order
  });

  it('does not republish identical content, and notifies watchers of real changes only', () => {
    const cache = new XdsCache();
    const seen: number[] = [];
    cache.watch('n', (v) => seen.push(v.revision));
    const first = cache.setProxyResources('n', view());
    expect(cache.setProxyResources('n', view())).toBe(first);
    cache.updateProxyResources('n', { upsert: [endpoints('a', [2])] });
    expect(seen).toHaveLength(2);
  });

  it('tells every watcher of a node, in the order they came, as watchers come and go (also during a publish)', () => {
    const cache = new XdsCache();
    const seen: string[] = [];
    const stopA = cache.watch('n', (v) => seen.push(`a${v.revision}`));
    const stopB = cache.watch('n', (v) => {
      seen.push(`b${v.revision}`);
      stopC(); // C goes while B is being told: it still hears of this view, not the next
    });
    const stopC = cache.watch('n', (v) => seen.push(`c${v.revision}`));
    cache.watch('other', (v) => seen.push(`other${v.revision}`));
    const r1 = cache.setProxyResources('n', view()).revision;
    expect(seen).toEqual([`a${r1}`, `b${r1}`, `c${r1}`]);
    seen.length = 0;
    stopA();
    const r2 = cache.updateProxyResources('n', { upsert: [endpoints('a', [2])] }).revision;
    expect(seen).toEqual([`b${r2}`]);
    seen.length = 0;
    stopB();
    const stopD = cache.watch('n', (v) => seen.push(`d${v.revision}`));
    const r3 = cache.updateProxyResources('n', { upsert: [endpoints('a', [3])] }).revision;
    expect(seen).toEqual([`d${r3}`]);
    stopD();
    cache.removeProxy('n');
    expect(cache.view('n')).toBeUndefined();
  });

  it('updates and removes single resources, and releases entries of removed proxies', () => {
    const cache = new XdsCache();
    cache.setProxyResources('n', [...view(), secret('s')]);
    const v = cache.updateProxyResources('n', { remove: [{ typeUrl: TypeUrl.secret, name: 's' }] });
    expect(v.resources.get(TypeUrl.secret)?.size ?? 0).toBe(0);
    expect(() =>
      cache.updateProxyResources('n', { remove: [{ typeUrl: TypeUrl.endpoint, name: 'a' }] }),
    ).toThrow(/references/);
    let last: number | undefined;
    cache.watch('n', (x) => (last = [...x.resources.values()].reduce((acc, m) => acc + m.size, 0)));
    cache.removeProxy('n');
    expect(last).toBe(0);
    expect(cache.entryCount).toBe(0);
  });
});

describe('XdsCache pool accounting', () => {
  it('shares one entry for equal content encoded twice, and frees it when the last view goes', () => {
    const cache = new XdsCache();
    const a = cache.encode(secret('s'));
    const b = cache.encode(secret('s')); // equal content, another object
    cache.setProxyResources('p1', [a]);
    cache.setProxyResources('p2', [b]);
    expect(cache.entryCount).toBe(1);
    expect(cache.view('p1')!.resources.get(TypeUrl.secret)!.get('s')).toBe(
      cache.view('p2')!.resources.get(TypeUrl.secret)!.get('s'),
    );
    cache.removeProxy('p1');
    expect(cache.entryCount).toBe(1);
    cache.removeProxy('p2');
    expect(cache.entryCount).toBe(0);
  });

  it('a refused view leaves no entries behind; an unchanged type keeps its Map', () => {
    const cache = new XdsCache();
    const v1 = cache.setProxyResources('n', view());
    expect(() => cache.setProxyResources('n', [edsCluster('zzz')])).toThrow();
    expect(cache.entryCount).toBe(3);
    const v2 = cache.setProxyResources('n', view(7));
    expect(v2.resources.get(TypeUrl.cluster)).toBe(v1.resources.get(TypeUrl.cluster));
    expect(v2.resources.get(TypeUrl.endpoint)).not.toBe(v1.resources.get(TypeUrl.endpoint));
    expect(cache.entryCount).toBe(3);
  });

  it('gives proxies with equal resources of a type one Map, and keeps counting uses per proxy', () => {
    const cache = new XdsCache();
    const shared = view().map((m) => cache.encode(m));
    const views = Array.from({ length: 3 }, (_, i) => cache.setProxyResources(`p${i}`, shared));
    expect(views[1]!.resources.get(TypeUrl.endpoint)).toBe(
      views[0]!.resources.get(TypeUrl.endpoint),
    );
    const moved = cache.setProxyResources('p0', [
      ...shared.slice(0, 1),
      cache.encode(endpoints('a', [9])),
      shared[2]!,
    ]);
    expect(moved.resources.get(TypeUrl.cluster)).toBe(views[0]!.resources.get(TypeUrl.cluster));
    expect(cache.view('p1')!.resources.get(TypeUrl.endpoint)!.get('a')!.version).toBe(
      shared[1]!.version,
    );
    expect(cache.entryCount).toBe(4);
    cache.removeProxy('p0');
    expect(cache.entryCount).toBe(3);
    for (const id of ['p1', 'p2']) cache.removeProxy(id);
    expect(cache.entryCount).toBe(0);
  });

  it('checks references again when a shared Map they point into changes', () => {
    const cache = new XdsCache();
    cache.setProxyResources('p1', [...view(), secret('s')]);
    // The same clusters (and their Map) over endpoints that no longer include the cluster's own.
    expect(() =>
      cache.setProxyResources('p2', [
        edsCluster('a'),
        endpoints('b', [1]),
        tcpListener('l', 10000, 'a'),
        secret('s'),
      ]),
    ).toThrow(/Cluster "a" references ClusterLoadAssignment "a"/);
    expect(() =>
      cache.updateProxyResources('p1', {
        remove: [{ typeUrl: TypeUrl.endpoint, name: 'a' }],
        upsert: [endpoints('b', [1])],
      }),
    ).toThrow(/Cluster "a" references ClusterLoadAssignment "a"/);
    expect(cache.view('p2')).toBeUndefined();
    expect(cache.view('p1')!.resources.get(TypeUrl.endpoint)!.has('a')).toBe(true);
  });

  it('builds a repeated update again once the entries of its first result left the pool', () => {
    const cache = new XdsCache();
    const initial = cache.encode(endpoints('a', [1]));
    const move = cache.encode(endpoints('b', [2]));
    for (const id of ['p1', 'p2', 'p3']) cache.setProxyResources(id, [initial]);
    cache.updateProxyResources('p1', { upsert: [move] });
    const first = cache.view('p1')!.resources.get(TypeUrl.endpoint)!;
    cache.removeProxy('p1'); // the only view holding `move`'s entry
    expect(cache.entryCount).toBe(1);
    cache.updateProxyResources('p2', { upsert: [move] });
    cache.updateProxyResources('p3', { upsert: [move] });
    const eds = (id: string) => cache.view(id)!.resources.get(TypeUrl.endpoint)!;
    expect(cache.entryCount).toBe(2);
    expect(eds('p2')).not.toBe(first);
    expect(eds('p3')).toBe(eds('p2'));
    for (const id of ['p2', 'p3']) cache.removeProxy(id);
    expect(cache.entryCount).toBe(0);
  });

  it('does not hand out a Map whose entries left the pool when its last proxy went', () => {
    const cache = new XdsCache();
    const shared = view().map((m) => cache.encode(m));
    cache.setProxyResources('p1', shared);
    cache.removeProxy('p1');
    expect(cache.entryCount).toBe(0);
    const v2 = cache.setProxyResources('p2', shared);
    const v3 = cache.setProxyResources('p3', shared);
    expect(cache.entryCount).toBe(3);
    expect(v3.resources.get(TypeUrl.endpoint)!.get('a')).toBe(
      v2.resources.get(TypeUrl.endpoint)!.get('a'),
    );
    for (const id of ['p2', 'p3']) cache.removeProxy(id);
    expect(cache.entryCount).toBe(0);
  });

  it('republishing the same encoded resources keeps each Map; any change of object, order or type is seen', () => {
    const cache = new XdsCache();
    const [cluster, eds, listener] = view().map((m) => cache.encode(m));
    const first = cache.setProxyResources('n', [cluster!, eds!, listener!]);
    const names = (v: ReturnType<XdsCache['setProxyResources']>) =>
      [...v.resources]
        .map(([t, m]) => `${t.slice(t.lastIndexOf('.') + 1)}:${[...m.keys()].join(',')}`)
        .sort();
    expect(cache.setProxyResources('n', [cluster!, eds!, listener!])).toBe(first);
    // The same resources in another order: the same view.
    expect(cache.setProxyResources('n', [listener!, cluster!, eds!])).toBe(first);
    // A resource of another type in the place of one: both types are read again.
    const s = cache.encode(secret('s'));
    const swapped = cache.setProxyResources('n', [s, cluster!, eds!, listener!]);
    expect(names(swapped)).toEqual([
      'Cluster:a',
      'ClusterLoadAssignment:a',
      'Listener:l',
      'Secret:s',
    ]);
    const replaced = cache.setProxyResources('n', [
      s,
      cluster!,
      eds!,
      cache.encode(tcpListener('l2', 10001, 'a')),
    ]);
    expect(names(replaced)).toEqual([
      'Cluster:a',
      'ClusterLoadAssignment:a',
      'Listener:l2',
      'Secret:s',
    ]);
    expect(replaced.resources.get(TypeUrl.cluster)).toBe(first.resources.get(TypeUrl.cluster));
    // An equal resource encoded again (another object) is the same content.
    expect(
      cache.setProxyResources('n', [
        s,
        cluster!,
        cache.encode(endpoints('a', [1])),
        cache.encode(tcpListener('l2', 10001, 'a')),
      ]),
    ).toBe(replaced);
  });
});
