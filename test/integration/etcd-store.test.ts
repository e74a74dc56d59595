/**
 * The store on a real etcd (issue 15, docs/architecture.md "Store"): the Store contract the
 * embedded LMDB store keeps, now between two store clients standing for two isthmus servers of one
 * cluster — transactions serialize across them, each sees the other's writes through the watch in
 * commit order, and an etcd that goes away fails calls with a clear `unavailable` instead of
 * hanging, then everything resumes (the watch without missing an event) when it returns.
 */
import { Etcd3 } from 'etcd3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { IsthmusError } from '../../src/errors.js';
import { openEtcdStore } from '../../src/store/etcd-store.js';
import type { Store, StoreEvent } from '../../src/store/index.js';
import { type EtcdServer, skipWithoutEtcd, startEtcd } from '../helpers/etcd.js';
import { skipWithoutToxiproxy, startToxiproxy } from '../helpers/toxiproxy.js';
import { waitFor } from '../helpers/wait.js';

describe.skipIf(skipWithoutEtcd())('the store on etcd', () => {
  let etcd: EtcdServer;
  const open: Store[] = [];
  let n = 0;

  /** A store client under a fresh prefix (or the given one, for a second "server"). */
  async function store(prefix = `t${++n}/`): Promise<Store> {
    const s = await openEtcdStore({ endpoints: [etcd.endpoint], prefix, callTimeoutMs: 2_000 });
    open.push(s);
    return s;
  }

  beforeAll(async () => {
    etcd = await startEtcd();
  }, 60_000);

  afterEach(async () => {
    await Promise.all(open.splice(0).map((s) => s.close()));
  });

  afterAll(async () => {
    await etcd?.stop();
  });

  it('round-trips values and unicode, lists a prefix sorted without its neighbours, deletes', async () => {
    const s = await store();
    await s.put('a/2', { x: [1, 'two', null, { é: true }] });
    await s.put('a/1', 'one');
    await s.put('a/😀', 3);
    await s.put('ab/1', 'neighbour');
    expect(await s.get('a/2')).toEqual({ x: [1, 'two', null, { é: true }] });
    expect(await s.get('missing')).toBeUndefined();
    expect((await s.list('a/')).map((kv) => [kv.key, kv.value])).toEqual([
      ['a/1', 'one'],
      ['a/2', { x: [1, 'two', null, { é: true }] }],
      ['a/😀', 3],
    ]);
    expect(await s.delete('a/1')).toBe(true);
    expect(await s.delete('a/1')).toBe(false);
    expect((await s.list('a/')).map((kv) => kv.key)).toEqual(['a/2', 'a/😀']);
  });

  it('one revision per transaction, rising; a key carries the revision it was written at', async () => {
    const s = await store();
    const r0 = await s.revision();
    await s.txn(async (tx) => {
      tx.put('k/1', 1);
      tx.put('k/2', 2);
    });
    const r1 = await s.revision();
    expect(r1).toBe(r0 + 1);
    expect((await s.list('k/')).map((kv) => kv.revision)).toEqual([r1, r1]);
  });

  it('a transaction that throws writes nothing; one reads its own writes and deletes', async () => {
    const s = await store();
    await s.put('x', 1);
    await expect(
      s.txn(async (tx) => {
        tx.put('x', 2);
        throw new Error('no');
      }),
    ).rejects.toThrow('no');
    expect(await s.get('x')).toBe(1);
    await s.txn(async (tx) => {
      tx.put('y', 'new');
      tx.delete('x');
      expect(await tx.get('y')).toBe('new');
      expect(await tx.get('x')).toBeUndefined();
      expect((await tx.list('')).map((kv) => kv.key)).toEqual(['y']);
    });
  });

  it('read-modify-writes from two servers serialize: 2 × 25 concurrent increments give 50', async () => {
    const prefix = `shared${++n}/`;
    const [a, b] = [await store(prefix), await store(prefix)];
    const increment = (s: Store) =>
      s.txn(async (tx) => {
        const v = (await tx.get<number>('counter')) ?? 0;
        tx.put('counter', v + 1);
      });
    await Promise.all(Array.from({ length: 25 }, () => [increment(a!), increment(b!)]).flat());
    expect(await a!.get('counter')).toBe(50);
  });

  it('a transaction over a listed prefix conflicts with a key added there by the other server', async () => {
    const prefix = `listed${++n}/`;
    const [a, b] = [await store(prefix), await store(prefix)];
    let runs = 0;
    await a!.txn(async (tx) => {
      runs++;
      const count = (await tx.list('items/')).length;
      // The other server adds an item after this one listed them, before it commits.
      if (runs === 1) await b!.put('items/late', true);
      tx.put('count', count);
    });
    expect(runs).toBe(2);
    expect(await a!.get('count')).toBe(1);
  });

  it("each server's watch sees every server's changes under its prefix, in commit order, its own before txn resolves", async () => {
    const prefix = `watched${++n}/`;
    const [a, b] = [await store(prefix), await store(prefix)];
    const seenA: StoreEvent[] = [];
    const seenB: StoreEvent[] = [];
    a!.watch('svc/', (e) => seenA.push(e));
    b!.watch('svc/', (e) => seenB.push(e));
    await a!.put('svc/1', 'from a');
    expect(seenA.map((e) => e.key)).toEqual(['svc/1']);
    await b!.put('svc/2', 'from b');
    expect(seenB.map((e) => e.key)).toEqual(['svc/1', 'svc/2']);
    await a!.delete('svc/1');
    await b!.put('other/1', 'not watched');
    await waitFor(() => seenA.length === 3 && seenB.length === 3, {
      timeoutMs: 10_000,
      what: 'both watches to see all three changes',
    });
    const shape = (events: StoreEvent[]) => events.map((e) => `${e.kind} ${e.key} @${e.revision}`);
    expect(shape(seenA)).toEqual(shape(seenB));
    const revisions = seenA.map((e) => e.revision);
    expect([...revisions].sort((x, y) => x - y)).toEqual(revisions);
  });

  it('etcd gone: calls fail with unavailable naming etcd; back: reads, writes and the watch resume without a missed event', async () => {
    const prefix = `outage${++n}/`;
    const [a, b] = [await store(prefix), await store(prefix)];
    const seen: string[] = [];
    b!.watch('', (e) => seen.push(e.key));
    await a!.put('before', 1);
    await waitFor(() => seen.includes('before'), { timeoutMs: 10_000, what: 'the first event' });

    await etcd.kill();
    const failure = await a!.put('during', 1).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(failure).toBeInstanceOf(IsthmusError);
    expect(failure).toMatchObject({ code: 'unavailable' });
    expect((failure as Error).message).toMatch(/etcd/);

    await etcd.restart();
    await waitFor(
      () =>
        a!.put('after', 2).then(
          () => true,
          () => false,
        ),
      { timeoutMs: 30_000, intervalMs: 200, what: 'writes to work again after etcd returns' },
    );
    expect(await a!.get('after')).toBe(2);
    await waitFor(() => seen.includes('after'), {
      timeoutMs: 30_000,
      what: "the other server's watch to resume",
    });
    expect(seen).toEqual(['before', 'after']);
  }, 90_000);

  it('one leader among the servers of a prefix; a non-leader and an old leader whose lease was revoked cannot make leader-only writes', async () => {
    const prefix = `elect${++n}/`;
    const a = await openEtcdStore({
      endpoints: [etcd.endpoint],
      prefix,
      leaderTtlSeconds: 2,
    });
    const b = await openEtcdStore({
      endpoints: [etcd.endpoint],
      prefix,
      leaderTtlSeconds: 2,
    });
    open.push(a, b);
    const la = a.campaign('a:1');
    const lb = b.campaign('b:1');
    await waitFor(() => la.leader() !== undefined && la.leader() === lb.leader(), {
      timeoutMs: 10_000,
      what: 'both servers to agree on a leader',
    });
    expect([la.isLeader(), lb.isLeader()].filter(Boolean)).toHaveLength(1);
    const [leader, follower] = la.isLeader() ? [a, b] : [b, a];
    const [leaderLs, followerLs] = la.isLeader() ? [la, lb] : [lb, la];
    await leader.txn(async (tx) => tx.put('status', 'by leader'), { asLeader: true });
    await expect(
      follower.txn(async (tx) => tx.put('status', 'by follower'), { asLeader: true }),
    ).rejects.toThrow(/not the cluster leader/);
    // Anyone's ordinary writes still work.
    await follower.put('other', 1);

    // A partition, as etcd sees it: the leader's lease ends while the leader still runs.
    const raw = new Etcd3({ hosts: [etcd.endpoint] });
    try {
      const held = await raw.get(`elect${n}.leader`).exec();
      const leaseId = held.kvs[0]!.lease;
      await raw.leaseClient.leaseRevoke({ ID: leaseId });
    } finally {
      raw.close();
    }
    await expect(
      leader.txn(async (tx) => tx.put('status', 'by old leader'), { asLeader: true }),
    ).rejects.toThrow(/not the cluster leader/);
    await waitFor(() => followerLs.isLeader(), {
      timeoutMs: 15_000,
      what: 'the other server to take over',
    });
    await follower.txn(async (tx) => tx.put('status', 'by new leader'), { asLeader: true });
    expect(await leader.get('status')).toBe('by new leader');
    await waitFor(() => leaderLs.leader() === followerLs.leader(), {
      timeoutMs: 10_000,
      what: 'the old leader to learn the new one',
    });
    expect(leaderLs.isLeader()).toBe(false);
  }, 60_000);

  it.skipIf(skipWithoutToxiproxy())(
    'a watch cut off while its revision was compacted away reloads the prefix and delivers the difference',
    async () => {
      const prefix = `compact${++n}/`;
      const toxiproxy = await startToxiproxy();
      try {
        const link = await toxiproxy.proxy(`etcd-${n}`, etcd.endpoint);
        const a = await store(prefix);
        await a.put('keep', 1);
        await a.put('gone', 1);
        const b = await openEtcdStore({
          endpoints: [link.listen],
          prefix,
          callTimeoutMs: 2_000,
        });
        open.push(b);
        const seen: string[] = [];
        b.watch('', (e) => seen.push(`${e.kind} ${e.key}`));
        await link.cut();
        await a.delete('gone');
        await a.put('keep', 2);
        await a.put('new', 3);
        const raw = new Etcd3({ hosts: [etcd.endpoint] });
        try {
          await raw.kv.compact({ revision: String(await a.revision()), physical: true });
        } finally {
          raw.close();
        }
        await link.heal();
        await waitFor(() => seen.length >= 3, {
          timeoutMs: 30_000,
          what: 'the cut-off server to catch up',
        });
        expect(seen.sort()).toEqual(['delete gone', 'put keep', 'put new']);
        expect(await b.get('keep')).toBe(2);
      } finally {
        await toxiproxy.stop();
      }
    },
    60_000,
  );

  it.skipIf(skipWithoutToxiproxy())(
    'a leader cut off from etcd steps down before the other takes over, and cannot make a leader-only write when the link heals',
    async () => {
      const prefix = `partition${++n}/`;
      const toxiproxy = await startToxiproxy();
      try {
        const link = await toxiproxy.proxy(`etcd-partition-${n}`, etcd.endpoint);
        const ttl = { leaderTtlSeconds: 2, callTimeoutMs: 1_000 };
        const isolated = await openEtcdStore({ endpoints: [link.listen], prefix, ...ttl });
        open.push(isolated);
        const oldLeader = isolated.campaign('isolated:1');
        await waitFor(() => oldLeader.isLeader(), {
          timeoutMs: 10_000,
          what: 'the server behind the link to lead',
        });
        const other = await openEtcdStore({ endpoints: [etcd.endpoint], prefix, ...ttl });
        open.push(other);
        const newLeader = other.campaign('other:1');
        await waitFor(() => newLeader.leader() === 'isolated:1', {
          timeoutMs: 10_000,
          what: 'the other server to learn who leads',
        });
        // The moment the other server leads, the isolated one must no longer think it does: it
        // steps down 9/10 of the TTL after its last answered keep-alive, etcd expires the lease
        // after all of it.
        let oldLeaderLeadsAtHandover: boolean | undefined;
        newLeader.subscribe(() => {
          if (newLeader.isLeader() && oldLeaderLeadsAtHandover === undefined)
            oldLeaderLeadsAtHandover = oldLeader.isLeader();
        });

        await link.cut();
        await waitFor(() => newLeader.isLeader(), {
          timeoutMs: 30_000,
          what: 'the other server to take over once the lease expired',
        });
        expect(oldLeaderLeadsAtHandover).toBe(false);
        await other.txn(async (tx) => tx.put('status', 'by new leader'), { asLeader: true });

        await link.heal();
        // Back in touch with etcd (its client reconnects on its own backoff, so a call right after
        // the heal may still find no connection), the old leader's leader-only write still fails:
        // its lease is gone.
        await waitFor(
          async () => {
            // A read that throws is "not yet" to waitFor, which names its last error on timeout.
            await isolated.get('status');
            return true;
          },
          { timeoutMs: 30_000, what: 'the old leader to reach etcd again' },
        );
        await expect(
          isolated.txn(async (tx) => tx.put('status', 'by old leader'), { asLeader: true }),
        ).rejects.toThrow(/not the cluster leader/);
        await waitFor(() => oldLeader.leader() === 'other:1', {
          timeoutMs: 15_000,
          what: 'the old leader to learn the new one',
        });
        expect(oldLeader.isLeader()).toBe(false);
        expect(await isolated.get('status')).toBe('by new leader');
      } finally {
        await toxiproxy.stop();
      }
    },
    60_000,
  );

  it('an etcd that is not there: opening fails at once with the endpoints and the fix', async () => {
    await expect(
      openEtcdStore({ endpoints: ['127.0.0.1:1'], callTimeoutMs: 1_000 }),
    ).rejects.toThrow(/cannot reach etcd at 127\.0\.0\.1:1: .*check --etcd-endpoints/);
  });
});
