/**
 * Updates layer their changes over the entries they replace instead of copying them (issue 14,
 * src/xds/cache/type-entries.ts): after any sequence of upserts and removals, long enough to be
 * flattened on the way, a view reads exactly as the same resources set whole in a fresh cache.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { XdsCache } from '../../src/xds/cache/xds-cache.js';
import { TypeUrl } from '../../src/xds/types.js';
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
});
