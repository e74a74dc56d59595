import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Catalog } from '../../src/catalog/catalog.js';
import type { Clock } from '../../src/catalog/checks.js';
import { type CatalogEvent, instanceHealth } from '../../src/catalog/types.js';
import { IsthmusError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { openLmdbStore } from '../../src/store/index.js';
import type { Store } from '../../src/store/store.js';

/**
 * A clock that only moves when told; due timers fire on `advance`, which then waits for the
 * writes they started (`settle`, set once the catalog is open).
 */
class ManualClock implements Clock {
  settle: () => Promise<void> = async () => undefined;
  private t = 1_700_000_000_000;
  private timers: { at: number; fn: () => void }[] = [];
  now(): number {
    return this.t;
  }
  setTimer(fn: () => void, ms: number): () => void {
    const timer = { at: this.t + ms, fn };
    this.timers.push(timer);
    return () => (this.timers = this.timers.filter((x) => x !== timer));
  }
  async advance(ms: number): Promise<void> {
    this.t += ms;
    const due = this.timers.filter((x) => x.at <= this.t);
    this.timers = this.timers.filter((x) => x.at > this.t);
    due.forEach((x) => x.fn());
    await this.settle();
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  }
  pending(): number {
    return this.timers.length;
  }
}

/**
 * Node's timers fire up to a millisecond before `Date.now()` reaches their deadline; this one
 * always does.
 */
class EarlyClock extends ManualClock {
  override setTimer(fn: () => void, ms: number): () => void {
    return super.setTimer(fn, Math.max(0, ms - 1));
  }
}

const dirs: string[] = [];
const open: { store: Store; catalog: Catalog }[] = [];
afterEach(async () => {
  for (const { catalog, store } of open.splice(0)) {
    await catalog.close();
    await store.close();
  }
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function openCatalog(
  clock: ManualClock,
  dir?: string,
): Promise<{ store: Store; catalog: Catalog; dir: string }> {
  const d = dir ?? mkdtempSync(join(tmpdir(), 'isthmus-catalog-'));
  if (!dir) dirs.push(d);
  const store = await openLmdbStore(d);
  const catalog = await Catalog.open(store, { datacenter: 'dc1', logger: silentLogger(), clock });
  clock.settle = () => catalog.writesSettled();
  open.push({ store, catalog });
  return { store, catalog, dir: d };
}

async function closeOne(entry: { store: Store; catalog: Catalog }): Promise<void> {
  open.splice(
    open.findIndex((o) => o.catalog === entry.catalog),
    1,
  );
  await entry.catalog.close();
  await entry.store.close();
}

const web = {
  Name: 'web',
  Address: '10.0.0.5',
  Port: 80,
  Check: { TTL: '10s' },
  Connect: { SidecarService: {} },
};

describe('Catalog', () => {
  it('expires TTL checks on time; heartbeats push the deadline without events; the sidecar alias follows', async () => {
    const clock = new ManualClock();
    const { catalog } = await openCatalog(clock);
    const events: CatalogEvent[] = [];
    catalog.subscribe((e) => events.push(e));
    await catalog.register(web);
    expect(instanceHealth(catalog.instance('web')!)).toBe('critical');
    expect(instanceHealth(catalog.instance('web-sidecar-proxy')!)).toBe('critical');

    await catalog.updateTtlCheck('service:web', 'passing', 'ok');
    expect(instanceHealth(catalog.instance('web-sidecar-proxy')!)).toBe('passing');
    events.length = 0;
    const modified = catalog.instance('web')!.modifyIndex;
    await clock.advance(8_000);
    await catalog.updateTtlCheck('service:web', 'passing', 'ok'); // heartbeat: same status and output
    expect(events).toEqual([]);
    expect(catalog.instance('web')!.modifyIndex).toBe(modified);
    await clock.advance(8_000); // 16 s after registration, 8 s after the heartbeat
    expect(instanceHealth(catalog.instance('web')!)).toBe('passing');
    await clock.advance(2_001);
    expect(catalog.instance('web')!.checks[0]).toMatchObject({
      status: 'critical',
      output: 'TTL expired',
    });
    expect(instanceHealth(catalog.instance('web-sidecar-proxy')!)).toBe('critical');
    expect(events.map((e) => e.kind === 'instance-upserted' && e.instance.id)).toEqual([
      'web',
      'web-sidecar-proxy',
    ]);
    expect(clock.pending()).toBe(0);
  });

  it('expires a TTL check whose timer fires before the deadline', async () => {
    const clock = new EarlyClock();
    const { catalog } = await openCatalog(clock);
    await catalog.register({ ...web, Check: { TTL: '1s', Status: 'passing' } });
    await clock.advance(999); // the timer fires 1 ms early: not due yet, so it must arm again
    expect(catalog.instance('web')!.checks[0]!.status).toBe('passing');
    expect(clock.pending()).toBe(1);
    await clock.advance(1);
    expect(catalog.instance('web')!.checks[0]).toMatchObject({
      status: 'critical',
      output: 'TTL expired',
    });
    expect(clock.pending()).toBe(0);
  });

  it('a write the store refuses (a full disk) changes nothing, and a refused TTL expiry is tried again', async () => {
    const clock = new ManualClock();
    // Only the catalog on the refusing store: another one would follow its writes and expire them.
    const { store, catalog: other } = await openCatalog(clock);
    await other.close();
    let full = false;
    // The Store as the LMDB one behaves on ENOSPC: the transaction fails, nothing is committed.
    const refusing = new Proxy(store, {
      get(target, prop) {
        if (prop === 'txn' && full)
          return () => Promise.reject(new IsthmusError('storage_full', 'no space left (ENOSPC)'));
        const value = Reflect.get(target, prop);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const catalog = await Catalog.open(refusing, {
      datacenter: 'dc1',
      logger: silentLogger(),
      clock,
    });
    clock.settle = () => catalog.writesSettled();
    await catalog.register({ ...web, Check: { TTL: '1s', Status: 'passing' } });

    full = true;
    await expect(catalog.register({ ...web, Name: 'api' })).rejects.toMatchObject({
      code: 'storage_full',
    });
    expect(catalog.instance('api')).toBeUndefined();
    await clock.advance(1_000); // due, but the expiry cannot be written
    expect(catalog.instance('web')!.checks[0]!.status).toBe('passing');
    expect(clock.pending()).toBe(1);

    full = false;
    await clock.advance(1_000);
    expect(catalog.instance('web')!.checks[0]).toMatchObject({
      status: 'critical',
      output: 'TTL expired',
    });
    expect(clock.pending()).toBe(0);
    await catalog.close();
  });

  it('re-registration keeps check status unless Status is given, and keeps CreateIndex', async () => {
    const clock = new ManualClock();
    const { catalog } = await openCatalog(clock);
    await catalog.register(web);
    await catalog.updateTtlCheck('service:web', 'warning', 'slow');
    const created = catalog.instance('web')!.createIndex;
    await catalog.register({ ...web, Tags: ['v2'] });
    expect(catalog.instance('web')!.checks[0]).toMatchObject({ status: 'warning', output: 'slow' });
    expect(catalog.instance('web')!.createIndex).toBe(created);
    expect(catalog.instance('web')!.modifyIndex).toBeGreaterThan(created);
    await catalog.register({ ...web, Check: { TTL: '10s', Status: 'passing' } });
    expect(catalog.instance('web')!.checks[0]!.status).toBe('passing');
  });

  it('a failed write changes neither the store nor the index', async () => {
    const { catalog, store } = await openCatalog(new ManualClock());
    await catalog.register(web);
    const revision = await store.revision();
    const before = JSON.stringify(catalog.allInstances());
    await expect(catalog.register({ ...web, Port: 'x' })).rejects.toMatchObject({
      code: 'invalid_argument',
      field: 'Port',
    });
    await expect(
      catalog.register({ Name: 'api', Check: { CheckID: 'service:web', TTL: '5s' } }),
    ).rejects.toMatchObject({ field: 'Check.CheckID' });
    await expect(catalog.deregister('nope')).rejects.toBeInstanceOf(IsthmusError);
    await expect(catalog.updateTtlCheck('nope', 'passing', '')).rejects.toMatchObject({
      code: 'not_found',
    });
    await expect(
      catalog.putConfigEntry({ Kind: 'mesh', DefaultIntentionAction: 'x' }),
    ).rejects.toMatchObject({ field: 'DefaultIntentionAction' });
    await expect(catalog.deleteConfigEntry('mesh', 'mesh')).rejects.toMatchObject({
      code: 'not_found',
    });
    expect(await store.revision()).toBe(revision);
    expect(JSON.stringify(catalog.allInstances())).toBe(before);
  });

  it('reuses a freed sidecar port, indexes by name, destination and kind', async () => {
    const { catalog } = await openCatalog(new ManualClock());
    for (const name of ['a', 'b', 'c'])
      await catalog.register({
        Name: name,
        Address: '10.0.0.1',
        Port: 80,
        Connect: { SidecarService: {} },
      });
    expect(catalog.instancesOfKind('connect-proxy').map((i) => [i.id, i.port])).toEqual([
      ['a-sidecar-proxy', 21000],
      ['b-sidecar-proxy', 21001],
      ['c-sidecar-proxy', 21002],
    ]);
    expect(await catalog.deregister('b')).toHaveLength(2);
    await catalog.register({
      Name: 'd',
      Address: '10.0.0.1',
      Port: 80,
      Connect: { SidecarService: {} },
    });
    expect(catalog.instance('d-sidecar-proxy')!.port).toBe(21001);
    await catalog.register({ Name: 'a', ID: 'a-2', Address: '10.0.0.2', Port: 80 });
    expect(catalog.instancesOf('a').map((i) => i.id)).toEqual(['a', 'a-2']);
    expect(catalog.sidecarsOf('a').map((i) => i.id)).toEqual(['a-sidecar-proxy']);
    expect(catalog.instancesOf('a', 'other')).toEqual([]);
    expect(catalog.instancesOfKind('typical').map((i) => i.id)).toEqual(['a', 'a-2', 'c', 'd']);
  });

  it('allocates the sidecar port range per address, as Consul does per agent', async () => {
    const { catalog } = await openCatalog(new ManualClock());
    // 300 services each on its own host: every sidecar gets the first port of the range.
    for (let i = 0; i < 300; i++)
      await catalog.register({
        Name: `s${i}`,
        Address: `10.1.${i >> 8}.${i & 255}`,
        Port: 80,
        Connect: { SidecarService: {} },
      });
    expect(new Set(catalog.instancesOfKind('connect-proxy').map((i) => i.port))).toEqual(
      new Set([21000]),
    );
    // One host holds the 256 ports of the range, then a sidecar needs an explicit port.
    for (let i = 0; i < 256; i++)
      await catalog.register({
        Name: `h${i}`,
        Address: '10.2.0.1',
        Port: 80,
        Connect: { SidecarService: {} },
      });
    await expect(
      catalog.register({
        Name: 'one-too-many',
        Address: '10.2.0.1',
        Port: 80,
        Connect: { SidecarService: {} },
      }),
    ).rejects.toMatchObject({
      field: 'Connect.SidecarService.Port',
      message: expect.stringContaining(
        'no free port left in 21000-21255 for a sidecar on 10.2.0.1',
      ),
    });
    // A sidecar that moves to another host takes that host's first free port.
    await catalog.register({
      Name: 's0',
      Address: '10.3.0.1',
      Port: 80,
      Connect: { SidecarService: { Address: '10.3.0.1' } },
    });
    expect(catalog.instance('s0-sidecar-proxy')!.port).toBe(21000);
  });

  it('never gives a sidecar the port one of its own upstreams binds on its address', async () => {
    const { catalog } = await openCatalog(new ManualClock());
    const up = (port: number) => ({
      DestinationName: 'db',
      LocalBindAddress: '10.0.0.1',
      LocalBindPort: port,
    });
    await catalog.register({
      Name: 'a',
      Address: '10.0.0.1',
      Port: 80,
      Connect: { SidecarService: { Proxy: { Upstreams: [up(21000)] } } },
    });
    expect(catalog.instance('a-sidecar-proxy')!.port).toBe(21001);
    // A re-registration whose upstream now binds the sidecar's port moves the sidecar.
    await catalog.register({
      Name: 'a',
      Address: '10.0.0.1',
      Port: 80,
      Connect: { SidecarService: { Proxy: { Upstreams: [up(21001)] } } },
    });
    expect(catalog.instance('a-sidecar-proxy')!.port).toBe(21000);
    // Bound on another address (127.0.0.1 by default), the same port is no conflict.
    await catalog.register({
      Name: 'a',
      Address: '10.0.0.1',
      Port: 80,
      Connect: {
        SidecarService: { Proxy: { Upstreams: [{ DestinationName: 'db', LocalBindPort: 21000 }] } },
      },
    });
    expect(catalog.instance('a-sidecar-proxy')!.port).toBe(21000);
  });

  it('a service-resolver with every part set is stored and reads back the same after a restart', async () => {
    const clock = new ManualClock();
    const first = await openCatalog(clock);
    await first.catalog.putConfigEntry({
      Kind: 'service-resolver',
      Name: 'api',
      DefaultSubset: 'v1',
      Subsets: { v1: { Filter: 'Service.Meta.version == v1', OnlyPassing: true } },
      Failover: { '*': { Targets: [{ Service: 'backup', Datacenter: 'dc2' }] } },
      ConnectTimeout: '2s',
      RequestTimeout: '10s',
      LoadBalancer: { Policy: 'ring_hash', RingHashConfig: { MinimumRingSize: 8 } },
    });
    await first.catalog.putConfigEntry({
      Kind: 'service-resolver',
      Name: 'old',
      Redirect: { Service: 'api', ServiceSubset: 'v1' },
      LoadBalancer: { Policy: 'least_request', LeastRequestConfig: { ChoiceCount: 4 } },
    });
    const before = first.catalog.configEntries('service-resolver');
    await closeOne(first);
    const second = await openCatalog(clock, first.dir);
    expect(second.catalog.configEntries('service-resolver')).toEqual(before);
    expect(before).toHaveLength(2);
  });

  it('after a restart, a TTL that ran out while the server was down turns critical at once', async () => {
    const clock = new ManualClock();
    const first = await openCatalog(clock);
    await first.catalog.register({ ...web, Check: { TTL: '10s', Status: 'passing' } });
    await first.catalog.putConfigEntry({ Kind: 'service-defaults', Name: 'web', Protocol: 'http' });
    await closeOne(first);
    await clock.advance(60_000);
    const second = await openCatalog(clock, first.dir);
    expect(second.catalog.configEntry('service-defaults', 'web')?.protocol).toBe('http');
    expect(second.catalog.instance('web')!.checks[0]!.status).toBe('passing');
    await clock.advance(0);
    expect(second.catalog.instance('web')!.checks[0]).toMatchObject({
      status: 'critical',
      output: 'TTL expired',
    });
  });
});
