/**
 * The discovery chain compiler (src/discovery-chain): Consul's target IDs, redirects to another
 * service and to a peer, failover to a local subset and a peer in order; and, over random resolver
 * graphs (loops included), it always ends, is deterministic, and never repeats a target.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ResolverTarget, ServiceResolverEntry } from '../../src/catalog/types.js';
import { compileChain } from '../../src/discovery-chain/compile.js';
import { matchesSubset, parseSubsetFilter } from '../../src/catalog/subset-filter.js';

function resolver(name: string, fields: Partial<ServiceResolverEntry> = {}): ServiceResolverEntry {
  return {
    kind: 'service-resolver',
    name,
    namespace: 'default',
    partition: 'default',
    defaultSubset: '',
    subsets: {},
    failover: {},
    connectTimeoutMs: 0,
    requestTimeoutMs: 0,
    ...fields,
  };
}
const target = (t: Partial<ResolverTarget>): ResolverTarget => ({
  service: '',
  serviceSubset: '',
  peer: '',
  datacenter: '',
  ...t,
});
const lookup =
  (...entries: ServiceResolverEntry[]) =>
  (name: string) =>
    entries.find((e) => e.name === name);
const ids = (c: ReturnType<typeof compileChain>) => [c.primary.id, ...c.failover.map((t) => t.id)];

describe('compileChain', () => {
  it('no resolver: the default chain, one target named as Consul names it', () => {
    const c = compileChain({ service: 'api', datacenter: 'dc1' }, lookup());
    expect(c.isDefault).toBe(true);
    expect(ids(c)).toEqual(['api.default.default.dc1']);
  });

  it('fails over from the default subset to another local subset, then to the peer, in order', () => {
    const api = resolver('api', {
      defaultSubset: 'v1',
      subsets: {
        v1: { filter: 'Service.Meta.version == v1', onlyPassing: false },
        v2: { filter: 'Service.Meta.version == v2', onlyPassing: true },
      },
      failover: {
        '*': {
          targets: [
            target({ serviceSubset: 'v2' }),
            target({ peer: 'cluster-a' }),
            target({ serviceSubset: 'v2' }),
          ],
        },
      },
      connectTimeoutMs: 2_000,
    });
    const c = compileChain({ service: 'api', datacenter: 'dc1' }, lookup(api));
    expect(c.isDefault).toBe(false);
    expect(ids(c)).toEqual([
      'v1.api.default.default.dc1',
      'v2.api.default.default.dc1',
      'api.default.default.external.cluster-a',
    ]);
    expect(c.primary).toMatchObject({ subset: 'v1', filter: 'Service.Meta.version == v1' });
    expect(c.failover[0]).toMatchObject({ onlyPassing: true });
    expect(c.failover[1]).toMatchObject({ peer: 'cluster-a', datacenter: '', subset: '' });
    expect(c.connectTimeoutMs).toBe(2_000);
  });

  it("a subset's own failover rule wins over *", () => {
    const api = resolver('api', {
      defaultSubset: 'v1',
      subsets: { v1: { filter: '', onlyPassing: false } },
      failover: {
        '*': { targets: [target({ peer: 'p1' })] },
        v1: { targets: [target({ peer: 'p2' })] },
      },
    });
    expect(ids(compileChain({ service: 'api', datacenter: 'dc1' }, lookup(api)))).toEqual([
      'v1.api.default.default.dc1',
      'api.default.default.external.p2',
    ]);
  });

  it("follows a redirect to another service into that service's resolver, and ends at a peer", () => {
    const web = resolver('old-api', {
      redirect: target({ service: 'api' }),
      connectTimeoutMs: 9_000,
    });
    const api = resolver('api', { redirect: target({ service: 'api', peer: 'cluster-a' }) });
    const c = compileChain({ service: 'old-api', datacenter: 'dc1' }, lookup(web, api));
    expect(c.service).toBe('old-api');
    expect(ids(c)).toEqual(['api.default.default.external.cluster-a']);
  });

  it('a subset whose definition was deleted is marked, so it gets no instances rather than all', () => {
    const web = resolver('web', { redirect: target({ service: 'api', serviceSubset: 'v9' }) });
    const c = compileChain({ service: 'web', datacenter: 'dc1' }, lookup(web, resolver('api')));
    expect(c.primary).toMatchObject({ id: 'v9.api.default.default.dc1', undefinedSubset: true });
  });

  it('a redirect to another datacenter keeps the service', () => {
    const api = resolver('api', { redirect: target({ datacenter: 'dc2' }) });
    expect(ids(compileChain({ service: 'api', datacenter: 'dc1' }, lookup(api)))).toEqual([
      'api.default.default.dc2',
    ]);
  });

  const names = ['a', 'b', 'c', 'd'];
  const arbTarget = fc.record({
    service: fc.constantFrom('', ...names),
    serviceSubset: fc.constantFrom('', 's1'),
    peer: fc.constantFrom('', '', 'p1'),
    datacenter: fc.constantFrom('', '', 'dc2'),
  });
  const arbResolver = (name: string) =>
    fc
      .record({
        redirect: fc.option(arbTarget, { nil: undefined }),
        failover: fc.array(arbTarget, { maxLength: 4 }),
        defaultSubset: fc.constantFrom('', 's1'),
      })
      .map(({ redirect, failover, defaultSubset }) =>
        resolver(name, {
          defaultSubset,
          subsets: { s1: { filter: 'Service.Tags contains s1', onlyPassing: false } },
          ...(redirect ? { redirect } : {}),
          failover: redirect ? {} : { '*': { targets: failover } },
        }),
      );
  const arbGraph = fc
    .tuple(...names.map(arbResolver))
    .chain((all) => fc.subarray(all).map((some) => some));

  it('over random resolver graphs (loops included): ends, deterministic whatever the lookup order, no repeated target', () => {
    fc.assert(
      fc.property(arbGraph, fc.constantFrom(...names), (entries, start) => {
        const req = { service: start, datacenter: 'dc1' };
        const once = compileChain(req, lookup(...entries));
        const again = compileChain(req, lookup(...[...entries].reverse()));
        expect(again).toEqual(once);
        const all = ids(once);
        expect(new Set(all).size).toBe(all.length);
        for (const t of [once.primary, ...once.failover])
          expect(t.peer === '' || (t.datacenter === '' && t.subset === '')).toBe(true);
      }),
      { numRuns: 500 },
    );
  });
});

describe('subset filters', () => {
  const instance = { tags: ['canary'], meta: { version: 'v2' } };
  it.each([
    ['Service.Meta.version == v2', true],
    ['Service.Meta.version == "v1"', false],
    ['Service.Meta.version != v1 and Service.Tags contains canary', true],
    ['canary in Service.Tags', true],
    ['"canary" not in Service.Tags', false],
    ['Service.Tags not contains stable', true],
    ['', true],
  ])('%s → %s', (text, expected) => {
    const parsed = parseSubsetFilter(text);
    expect(parsed.ok && matchesSubset(parsed.filter, instance)).toBe(expected);
  });

  it('never throws on random text: a filter parses or names the clause it does not understand', () => {
    fc.assert(
      fc.property(fc.string(), (text) => {
        const parsed = parseSubsetFilter(text);
        if (!parsed.ok) expect(typeof parsed.clause).toBe('string');
      }),
    );
  });
});
