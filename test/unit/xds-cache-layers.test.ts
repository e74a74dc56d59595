/**
 * Updates layer their changes over the entries they replace instead of copying them (issue 14,
 * src/xds/cache/type-entries.ts): after any sequence of upserts and removals, long enough to be
 * flattened on the way, a view reads exactly as the same resources set whole in a fresh cache. An
 * update repeated on the same entries takes the first one's result (XdsCache's UpdateResult): views
 * of several proxies given the same and different changes, and proxies going and coming, read as
 * their own resources set whole, and the pool holds exactly the entries some view uses.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { XdsCache } from '../../src/xds/cache/xds-cache.js';
import { TypeUrl } from '../../src/xds/types.js';
import type { EncodedResource } from '../../src/xds/cache/entry.js';
import { endpoints } from '../helpers/resources.js';

type Step = { kind: 'upsert'; name: string; port: number } | { kind: 'remove'; name: string };

const name = fc.constantFrom(...Array.from({ length: 12 }, (_, i) => `c${i}`));
const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({ kind: fc.constant('upsert' as const), name, port: fc.nat(5) }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('remove' as const), name }) },
);

/** name → version of the EDS entries, read through iteration. */
const listed = (cache: XdsCache, node: string) =>
  new Map(
    [...(cache.view(node)?.resources.get(TypeUrl.endpoint)?.values() ?? [])]
      .map((e) => [e.name, e.version] as const)
      .sort(([a], [b]) => (a < b ? -1 : 1)),
  );

describe('XdsCache updates', () => {
  it('read after any sequence of upserts and removals as the same resources set whole', () => {
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 120 }), (steps) => {
        const cache = new XdsCache();
        const model = new Map<string, number>([['c0', 0]]);
        cache.setProxyResources('n', [endpoints('c0', [0])]);
        steps.forEach((s, k) => {
          if (s.kind === 'upsert') {
            cache.updateProxyResources('n', { upsert: [endpoints(s.name, [s.port])] });
            model.set(s.name, s.port);
          } else {
            cache.updateProxyResources('n', {
              remove: [{ typeUrl: TypeUrl.endpoint, name: s.name }],
            });
            model.delete(s.name);
          }
          const whole = new XdsCache();
          whole.setProxyResources(
            'n',
            [...model].map(([n, port]) => endpoints(n, [port])),
          );
          const got = cache.view('n')?.resources.get(TypeUrl.endpoint);
          const want = whole.view('n')?.resources.get(TypeUrl.endpoint);
          // Lookups read through the layers; iterating flattens them, so only now and then.
          expect(got?.size ?? 0).toBe(want?.size ?? 0);
          for (const n of ['c0', 'c1', 'c5', 'c11', 'none'])
            expect(got?.get(n)?.version, n).toBe(want?.get(n)?.version);
          if (k % 40 === 39 || k === steps.length - 1)
            expect(listed(cache, 'n')).toEqual(listed(whole, 'n'));
        });
      }),
      { numRuns: 60 },
    );
  });

  it('give several proxies their own resources, sharing repeated changes, with the pool exact', () => {
    type Change = Step | { kind: 'drop' };
    const node = fc.nat(3);
    // Few names and ports, so that proxies often hold the same entries and get the same change.
    const few = fc.constantFrom('c0', 'c1', 'c2');
    const change: fc.Arbitrary<Change> = fc.oneof(
      {
        weight: 5,
        arbitrary: fc.record({ kind: fc.constant('upsert' as const), name: few, port: fc.nat(2) }),
      },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('remove' as const), name: few }) },
      { weight: 1, arbitrary: fc.constant({ kind: 'drop' as const }) },
    );
    // A change goes to one proxy, or to all of them in turn (as an endpoint move is published).
    const target = fc.oneof(node, fc.constant('all' as const));
    fc.assert(
      fc.property(fc.array(fc.tuple(target, change), { minLength: 1, maxLength: 80 }), (steps) => {
        const cache = new XdsCache();
        // One encoded object per resource, as the publisher's encoder hands out.
        const encoded = new Map<string, EncodedResource>();
        const eds = (n: string, port: number) => {
          const key = `${n}:${port}`;
          if (!encoded.has(key)) encoded.set(key, cache.encode(endpoints(n, [port])));
          return encoded.get(key)!;
        };
        const ids = ['p0', 'p1', 'p2', 'p3'];
        const models = ids.map(() => new Map<string, number>([['c0', 0]]));
        for (const id of ids) cache.setProxyResources(id, [eds('c0', 0)]);
        for (const [to, c] of steps) {
          for (const i of to === 'all' ? [0, 1, 2, 3] : [to]) {
            const id = ids[i]!;
            const model = models[i]!;
            if (c.kind === 'upsert') {
              cache.updateProxyResources(id, { upsert: [eds(c.name, c.port)] });
              model.set(c.name, c.port);
            } else if (c.kind === 'remove') {
              cache.updateProxyResources(id, {
                remove: [{ typeUrl: TypeUrl.endpoint, name: c.name }],
              });
              model.delete(c.name);
            } else {
              // The proxy goes (its entries may leave the pool) and comes back with c0 only.
              cache.removeProxy(id);
              model.clear();
              model.set('c0', 0);
              cache.setProxyResources(id, [eds('c0', 0)]);
            }
          }
          const held = new Set<string>();
          ids.forEach((id, i) => {
            const got = listed(cache, id);
            expect(got).toEqual(new Map([...models[i]!].map(([n, p]) => [n, eds(n, p).version])));
            for (const version of got.values()) held.add(version);
          });
          expect(cache.entryCount).toBe(held.size);
        }
      }),
      { numRuns: 100 },
    );
  });
});
