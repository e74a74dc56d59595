/**
 * The leaf cache's issuance bound (issue 18): ten thousand proxy instances asking at once queue
 * for a few issuance slots instead of starting ten thousand key generations together.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ConcurrencyLimit } from '../../src/ca/concurrency-limit.js';
import { LeafCache } from '../../src/ca/leaf-cache.js';
import type { Leaf, LeafIdentity } from '../../src/ca/types.js';
import { silentLogger } from '../../src/log.js';

const caches: LeafCache[] = [];
afterEach(() => {
  for (const c of caches.splice(0)) c.close();
});

/** A cache over a fake issuer that records how many issuances run at once. */
function fakeCache(maxIssuing?: number) {
  const seen = { running: 0, most: 0, issued: 0 };
  let serial = 0;
  const cache = new LeafCache({
    issue: async (identity: LeafIdentity): Promise<Leaf> => {
      seen.running++;
      seen.most = Math.max(seen.most, seen.running);
      await new Promise((r) => setImmediate(r));
      seen.running--;
      seen.issued++;
      return {
        spiffeId: identity.spiffeId,
        holder: identity.holder,
        certPem: 'cert',
        keyPem: `key ${++serial}`,
        serial: String(serial),
        rootId: 'root',
        notBefore: new Date(0),
        notAfter: new Date(3600_000),
      };
    },
    activeRootId: () => 'root',
    now: () => 0,
    ttlMs: 3600_000,
    onRenewed: () => undefined,
    ...(maxIssuing !== undefined ? { maxIssuing } : {}),
    logger: silentLogger(),
  });
  caches.push(cache);
  return { cache, seen };
}

describe('LeafCache issuance', () => {
  it('issues at most two leaves at once by default, and every holder gets its own', async () => {
    const { cache, seen } = fakeCache();
    const leaves = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        cache.get({ spiffeId: 'spiffe://td/ns/default/dc/dc1/svc/api', holder: `api-${i}` }),
      ),
    );
    expect(seen.most).toBe(2);
    expect(seen.issued).toBe(50);
    expect(new Set(leaves.map((l) => l.keyPem)).size).toBe(50);
    expect(cache.size).toBe(50);
  });

  it('honours another bound', async () => {
    const { cache, seen } = fakeCache(5);
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        cache.get({ spiffeId: 'spiffe://td/x', holder: `${i}` }),
      ),
    );
    expect(seen.most).toBe(5);
  });

  it('drops a released holder, and a release of an unknown holder is a no-op', async () => {
    const { cache } = fakeCache();
    await cache.get({ spiffeId: 'spiffe://td/x', holder: 'a' });
    cache.release('a');
    cache.release('never-seen');
    expect(cache.size).toBe(0);
  });
});

describe('ConcurrencyLimit', () => {
  it('runs waiting tasks in order, passing a slot on even when a task fails', async () => {
    const limit = new ConcurrencyLimit(1);
    const order: number[] = [];
    const failing = limit.run(async () => {
      order.push(0);
      throw new Error('boom');
    });
    const rest = [1, 2, 3].map((n) => limit.run(async () => void order.push(n)));
    expect(limit.queued).toBe(3);
    await expect(failing).rejects.toThrow('boom');
    await Promise.all(rest);
    expect(order).toEqual([0, 1, 2, 3]);
    expect(limit.queued).toBe(0);
  });

  it('refuses a bound below one', () => {
    expect(() => new ConcurrencyLimit(0)).toThrow(RangeError);
  });
});
