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

  it('a held prefix: a second server is refused naming the holder; a server whose hold lapsed cannot write', async () => {
    const prefix = `held${++n}/`;
    const first = await openEtcdStore({ endpoints: [etcd.endpoint], prefix, owner: 'server-1' });
    open.push(first);
    await expect(
      openEtcdStore({ endpoints: [etcd.endpoint], prefix, owner: 'server-2' }),
    ).rejects.toThrow(
      /held by another isthmus server \(server-1\): give each server its own --etcd-prefix/,
    );
    await first.put('k', 1);
    // The hold lapses (as when the lease expires in a partition): the owner key is gone.
    const raw = new Etcd3({ hosts: [etcd.endpoint] });
    try {
      await raw.delete().key(`held${n}.owner`);
    } finally {
      raw.close();
    }
    await expect(first.put('k', 2)).rejects.toThrow(/lost its hold on the etcd store/);
    expect(await first.get('k')).toBe(1);
    // Closing releases; the next server takes the prefix with what is in it.
    await first.close();
    const second = await openEtcdStore({ endpoints: [etcd.endpoint], prefix, owner: 'server-2' });
    open.push(second);
    expect(await second.get('k')).toBe(1);
  });

  it('an etcd that is not there: opening fails at once with the endpoints and the fix', async () => {
    await expect(
      openEtcdStore({ endpoints: ['127.0.0.1:1'], callTimeoutMs: 1_000 }),
    ).rejects.toThrow(/cannot reach etcd at 127\.0\.0\.1:1: .*check --etcd-endpoints/);
  });
});
