import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Catalog } from '../../src/catalog/catalog.js';
import { silentLogger } from '../../src/log.js';
import { openLmdbStore } from '../../src/store/index.js';
import type { Store } from '../../src/store/store.js';

/**
 * Writes that arrive together commit together (docs/architecture.md §11 "Registration at
 * scale"): each is planned against the committed state plus the earlier writes of its batch, in
 * the order they were made, and answered once the batch is committed.
 */

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A catalog over a fresh LMDB store whose transactions are counted. */
async function openCounted(dir = mkdtempSync(join(tmpdir(), 'isthmus-batch-'))) {
  const store = await openLmdbStore(dir);
  const counted = { commits: 0 };
  const txn = store.txn.bind(store);
  const wrapped: Store = Object.assign(Object.create(store) as Store, {
    txn: ((fn, opts) => {
      counted.commits++;
      return txn(fn, opts);
    }) as Store['txn'],
  });
  const catalog = await Catalog.open(wrapped, { datacenter: 'dc1', logger: silentLogger() });
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await catalog.close();
    await store.close();
  };
  cleanups.push(async () => {
    await close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { catalog, store, counted, dir, close };
}

const withSidecar = (name: string, address = '10.0.0.1') => ({
  Name: name,
  Address: address,
  Port: 8080,
  Connect: { SidecarService: {} },
});

describe('Catalog write batches', () => {
  it('concurrent registrations commit together, each planned after the ones before it', async () => {
    const { catalog, store, counted } = await openCounted();
    const before = await store.revision();
    const names = Array.from({ length: 60 }, (_, i) => `svc-${String(i).padStart(2, '0')}`);
    const answers = await Promise.all(names.map((n) => catalog.register(withSidecar(n))));

    expect(answers.map((a) => a.map((i) => i.id))).toEqual(
      names.map((n) => [n, `${n}-sidecar-proxy`]),
    );
    // One address: every sidecar got its own port from the range, as if registered in turn.
    const ports = names.map((n) => catalog.instance(`${n}-sidecar-proxy`)!.port);
    expect(ports).toEqual(names.map((_, i) => 21000 + i));
    // Far fewer commits than registrations (the first alone, the rest as they queued up).
    expect(counted.commits).toBeLessThanOrEqual(3);
    expect(await store.revision()).toBe(before + counted.commits);
    expect(catalog.instancesOfKind('connect-proxy')).toHaveLength(60);
  });

  it('one invalid registration among many fails alone with its 400; the others are stored', async () => {
    const { catalog } = await openCounted();
    const bodies: unknown[] = Array.from({ length: 20 }, (_, i) => ({
      Name: `api-${i}`,
      Port: 80,
      Check: { CheckID: `check-${i}`, TTL: '30s' },
    }));
    // Valid on its own, refused after api-3 of the same batch took check-3.
    bodies[10] = { Name: 'thief', Port: 80, Check: { CheckID: 'check-3', TTL: '30s' } };
    const settled = await Promise.allSettled(bodies.map((b) => catalog.register(b)));

    const refused = settled.flatMap((s, i) => (s.status === 'rejected' ? [[i, s.reason]] : []));
    expect(refused).toHaveLength(1);
    expect(refused[0]![0]).toBe(10);
    expect(refused[0]![1]).toMatchObject({ code: 'invalid_argument', field: 'Check.CheckID' });
    expect(catalog.instance('thief')).toBeUndefined();
    expect(catalog.instancesOfKind('typical')).toHaveLength(19);
    expect(catalog.checkOwner('check-3')?.id).toBe('api-3');
  });

  it('a delete in the same batch sees the registration before it, and not the one after', async () => {
    const { catalog } = await openCounted();
    await catalog.register(withSidecar('keep'));
    const [registered, removed, notYet, again, other] = await Promise.allSettled([
      catalog.register(withSidecar('web')),
      catalog.deregister('web'),
      catalog.deregister('late'),
      catalog.register(withSidecar('late')),
      catalog.register(withSidecar('other')),
    ]);
    expect(registered).toMatchObject({ status: 'fulfilled' });
    expect(removed.status === 'fulfilled' && removed.value.map((i) => i.id)).toEqual([
      'web',
      'web-sidecar-proxy',
    ]);
    expect(notYet).toMatchObject({ status: 'rejected', reason: { code: 'not_found' } });
    expect(again).toMatchObject({ status: 'fulfilled' });
    expect(other).toMatchObject({ status: 'fulfilled' });
    expect(catalog.instance('web')).toBeUndefined();
    expect(catalog.instance('web-sidecar-proxy')).toBeUndefined();
    // web's sidecar port was taken in the batch and given back by its delete: late reuses it.
    expect(
      ['keep', 'late', 'other'].map((n) => catalog.instance(`${n}-sidecar-proxy`)?.port),
    ).toEqual([21000, 21001, 21002]);
  });

  it('a config entry delete in the batch is checked against an entry put before it', async () => {
    const { catalog } = await openCounted();
    const resolver = { Kind: 'service-resolver', Name: 'api', Subsets: { v1: { Filter: '' } } };
    const router = {
      Kind: 'service-router',
      Name: 'api',
      Routes: [
        {
          Match: { HTTP: { PathPrefix: '/v1' } },
          Destination: { Service: 'api', ServiceSubset: 'v1' },
        },
      ],
    };
    await catalog.putConfigEntry({ Kind: 'service-defaults', Name: 'api', Protocol: 'http' });
    const [put, routed, deleted] = await Promise.allSettled([
      catalog.putConfigEntry(resolver),
      catalog.putConfigEntry(router),
      catalog.deleteConfigEntry('service-resolver', 'api'),
    ]);
    expect(put).toMatchObject({ status: 'fulfilled' });
    expect(routed).toMatchObject({ status: 'fulfilled' });
    // The router relies on the resolver's subset, put earlier in the same batch.
    expect(deleted).toMatchObject({ status: 'rejected', reason: { code: 'invalid_argument' } });
    expect(catalog.configEntry('service-resolver', 'api')).toBeDefined();
    expect(catalog.configEntry('service-router', 'api')).toBeDefined();
  });

  it('answered registrations are in the store: a new catalog over it has them all', async () => {
    const { catalog, dir, close } = await openCounted();
    const names = Array.from({ length: 40 }, (_, i) => `svc-${i}`);
    await Promise.all(
      names.map((n) => catalog.register(withSidecar(n, `10.0.1.${names.indexOf(n)}`))),
    );
    await close();
    const reopened = await openCounted(dir);
    expect(reopened.catalog.instancesOfKind('connect-proxy')).toHaveLength(40);
    expect(reopened.catalog.instance('svc-39-sidecar-proxy')?.address).toBe('10.0.1.39');
  });
});
