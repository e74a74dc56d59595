import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { openLmdbStore, type Store, type StoreEvent } from '../../src/store/index.js';
import { createLogger } from '../../src/log.js';

let dir: string;
const opened: Store[] = [];

async function openStore(opts?: Parameters<typeof openLmdbStore>[1]): Promise<Store> {
  const store = await openLmdbStore(dir, opts);
  opened.push(store);
  return store;
}

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'isthmus-store-'));
});

afterEach(async () => {
  await Promise.all(opened.splice(0).map((s) => s.close()));
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('LMDB store: basic operations', () => {
  it('round-trips nested objects and unicode, and delete reports whether the key existed', async () => {
    const store = await openStore();
    const value = {
      name: 'peer-ü',
      tags: ['a', '日本', '😀'],
      nested: { n: 1.5, neg: -3, t: true, none: null },
    };
    await store.put('peerings/by-name/ü', value);
    expect(await store.get('peerings/by-name/ü')).toEqual(value);
    expect(await store.get('missing')).toBeUndefined();

    expect(await store.delete('peerings/by-name/ü')).toBe(true);
    expect(await store.get('peerings/by-name/ü')).toBeUndefined();
    const revision = await store.revision();
    expect(await store.delete('peerings/by-name/ü')).toBe(false);
    expect(await store.revision()).toBe(revision);
  });

  it('lists keys under a prefix, sorted, without leaking neighbour prefixes', async () => {
    const store = await openStore();
    for (const key of ['ab/1', 'a/c', 'b/1', 'a/a', 'a', 'a/b']) await store.put(key, key);
    const listed = await store.list('a/');
    expect(listed.map((kv) => kv.key)).toEqual(['a/a', 'a/b', 'a/c']);
    expect(listed.map((kv) => kv.value)).toEqual(['a/a', 'a/b', 'a/c']);
    expect(listed.map((kv) => kv.revision)).toEqual([4, 6, 2]);
    expect((await store.list('')).map((kv) => kv.key)).toEqual([
      'a',
      'a/a',
      'a/b',
      'a/c',
      'ab/1',
      'b/1',
    ]);
    expect(await store.list('zz/')).toEqual([]);
  });

  it('narrows an existing data directory that others can read to 0700 (it holds stream secrets)', async () => {
    fs.chmodSync(dir, 0o755);
    const store = await openStore();
    await store.put('k', 'v');
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
  });

  it('keeps values and a rising revision across close and reopen', async () => {
    const first = await openStore();
    await first.put('k/1', { v: 1 });
    await first.put('k/2', { v: 2 });
    await first.close();

    const second = await openStore();
    expect(await second.get('k/1')).toEqual({ v: 1 });
    expect(await second.revision()).toBe(2);
    await second.put('k/3', { v: 3 });
    expect(await second.revision()).toBe(3);
    expect((await second.list('k/')).map((kv) => kv.revision)).toEqual([1, 2, 3]);
  });
});

describe('LMDB store: transactions', () => {
  it('writes nothing when the transaction function throws', async () => {
    const store = await openStore();
    await store.put('keep', 'old');
    const events: StoreEvent[] = [];
    store.watch('', (e) => events.push(e));

    const failing = store.txn(async (tx) => {
      tx.put('keep', 'new');
      tx.put('other', 1);
      tx.delete('keep');
      throw new Error('validation failed');
    });
    await expect(failing).rejects.toThrow('validation failed');
    expect(await store.get('keep')).toBe('old');
    expect(await store.get('other')).toBeUndefined();
    expect(await store.revision()).toBe(1);
    expect(events).toEqual([]);
  });

  it('serializes concurrent read-modify-writes: 50 increments give 50', async () => {
    const store = await openStore();
    const increment = () =>
      store.txn(async (tx) => {
        const n = (await tx.get<number>('counter')) ?? 0;
        await new Promise((resolve) => setImmediate(resolve));
        tx.put('counter', n + 1);
      });
    await Promise.all(Array.from({ length: 50 }, increment));
    expect(await store.get('counter')).toBe(50);
    expect(await store.revision()).toBe(50);
  });

  it('group commit: writes submitted together each get their own revision, in order; one that throws leaves no trace', async () => {
    const store = await openStore();
    const events: StoreEvent[] = [];
    store.watch('', (e) => events.push(e));
    const seenRevisions: number[] = [];
    const writes = Array.from({ length: 40 }, (_, i) =>
      store.txn(async (tx) => {
        seenRevisions.push(await store.revision());
        if (i === 17) {
          tx.put('g/poison', i);
          throw new Error('refused');
        }
        const before = await tx.list('g/');
        tx.put(`g/${String(i).padStart(2, '0')}`, i);
        return before.length;
      }),
    );
    const results = await Promise.allSettled(writes);
    expect(results.filter((r) => r.status === 'rejected')).toHaveLength(1);
    // Each transaction saw the writes of every one before it (those that did not throw).
    expect(results.map((r) => (r.status === 'fulfilled' ? r.value : -1))).toEqual(
      Array.from({ length: 40 }, (_, i) => (i === 17 ? -1 : i < 17 ? i : i - 1)),
    );
    expect(await store.get('g/poison')).toBeUndefined();
    expect(await store.revision()).toBe(39);
    expect(events.map((e) => e.revision)).toEqual(Array.from({ length: 39 }, (_, i) => i + 1));
    // `revision()` inside a transaction is the one it builds on, even within a group.
    expect(seenRevisions).toEqual(Array.from({ length: 40 }, (_, i) => (i <= 17 ? i : i - 1)));
    expect((await store.list('g/')).map((kv) => kv.revision)).toEqual(
      Array.from({ length: 39 }, (_, i) => i + 1),
    );
  });

  it('reads its own writes and deletes, in get and list', async () => {
    const store = await openStore();
    await store.put('p/a', 'a');
    await store.put('p/b', 'b');
    const seen = await store.txn(async (tx) => {
      tx.put('p/c', 'c');
      tx.delete('p/a');
      tx.put('p/b', 'b2');
      tx.put('q/x', 'outside');
      return { a: await tx.get('p/a'), b: await tx.get('p/b'), list: await tx.list('p/') };
    });
    expect(seen.a).toBeUndefined();
    expect(seen.b).toBe('b2');
    expect(seen.list).toEqual([
      { key: 'p/b', value: 'b2', revision: 3 },
      { key: 'p/c', value: 'c', revision: 3 },
    ]);
    expect(await store.list('p/')).toEqual(seen.list);
    expect(await store.get('p/a')).toBeUndefined();
  });

  it('commits the value as it was at put time, not later mutations by the caller', async () => {
    const store = await openStore();
    const value = { n: 1 };
    await store.txn(async (tx) => {
      tx.put('k', value);
      value.n = 2;
    });
    expect(await store.get('k')).toEqual({ n: 1 });
  });
});

describe('LMDB store: watch', () => {
  it('delivers changes under the prefix in commit order with revisions, until unsubscribed', async () => {
    const store = await openStore();
    const events: StoreEvent[] = [];
    const stop = store.watch('svc/', (e) => events.push(e));
    await store.put('svc/a', 1);
    await store.put('other/x', 1);
    await store.txn(async (tx) => {
      tx.put('svc/b', 2);
      tx.delete('svc/a');
      tx.delete('svc/never-existed');
    });
    stop();
    await store.put('svc/c', 3);
    expect(events).toEqual([
      { kind: 'put', key: 'svc/a', value: 1, revision: 1 },
      { kind: 'put', key: 'svc/b', value: 2, revision: 3 },
      { kind: 'delete', key: 'svc/a', revision: 3 },
    ]);
  });

  it('logs a throwing watcher and keeps serving the store and other watchers', async () => {
    const logLines: string[] = [];
    const sink = new Writable({
      write: (chunk, _enc, done) => (logLines.push(String(chunk)), done()),
    });
    const store = await openStore({ logger: createLogger('error', sink) });
    const events: StoreEvent[] = [];
    store.watch('', () => {
      throw new Error('watcher bug');
    });
    store.watch('', (e) => events.push(e));
    await store.put('a', 1);
    await store.put('b', 2);
    expect(events.map((e) => e.key)).toEqual(['a', 'b']);
    expect(await store.get('b')).toBe(2);
    expect(logLines.join('')).toContain('watcher bug');
  });
});

describe('LMDB store: ownership and lifecycle', () => {
  it('refuses to open a directory this process already has open, naming it', async () => {
    const first = await openStore();
    await expect(openLmdbStore(dir)).rejects.toThrow(fs.realpathSync(dir));
    await first.close();
    const again = await openStore();
    expect(await again.revision()).toBe(0);
  });

  it('rejects operations after close', async () => {
    const store = await openStore();
    await store.put('k', 1);
    await store.close();
    await expect(store.get('k')).rejects.toThrow(/closed/);
    await expect(store.list('')).rejects.toThrow(/closed/);
    await expect(store.put('k', 2)).rejects.toThrow(/closed/);
    await expect(store.delete('k')).rejects.toThrow(/closed/);
    await expect(store.txn(async () => undefined)).rejects.toThrow(/closed/);
    await expect(store.revision()).rejects.toThrow(/closed/);
    await store.close();
  });

  it('fails a transaction loudly when another process wrote the dir meanwhile', async () => {
    const store = await openStore();
    await store.put('counter', 1);
    const txn = store.txn(async (tx) => {
      const n = (await tx.get<number>('counter')) ?? 0;
      await writeFromAnotherProcess(dir, 'counter', 100);
      tx.put('counter', n + 1);
    });
    await expect(txn).rejects.toThrow(/another process/);
    expect(await store.get('counter')).toBe(100);
  });
});

const storeModule = fileURLToPath(new URL('../../src/store/lmdb-store.ts', import.meta.url));
const childScript = `
const [modulePath, dir, key, value] = process.argv.slice(1);
const { openLmdbStore } = await import(modulePath);
const store = await openLmdbStore(dir);
await store.put(key, JSON.parse(value));
await store.close();
`;

async function writeFromAnotherProcess(
  storeDir: string,
  key: string,
  value: number,
): Promise<void> {
  const args = [
    '--import',
    'tsx',
    '--input-type=module',
    '-e',
    childScript,
    storeModule,
    storeDir,
    key,
    String(value),
  ];
  await promisify(execFile)(process.execPath, args, { timeout: 20_000 });
}
