import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { openProxyTokens } from '../../src/acl/proxy-tokens.js';
import { Catalog } from '../../src/catalog/catalog.js';
import { createLogger, silentLogger } from '../../src/log.js';
import { ImportedServices } from '../../src/peering/imported.js';
import { Peerings } from '../../src/peering/peerings.js';
import {
  type JsonValue,
  RecordCollection,
  type Store,
  StoredRecordError,
  openLmdbStore,
} from '../../src/store/index.js';

/**
 * Records on disk are validated on read (issue 13 item 7): records written before versions
 * existed still load, a corrupt one is reported with its key and field, never half-loaded.
 */

let dir: string;
let store: Store;

beforeEach(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'isthmus-records-'));
  store = await openLmdbStore(dir);
});

afterEach(async () => {
  await store.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const local = {
  datacenter: 'dc-a',
  partition: 'default',
  serverName: 'server.dc-a.peering.a.consul',
  rootPems: () => [],
  serverAddresses: () => ['127.0.0.1:8503'],
};

/** A catalog instance exactly as isthmus wrote it before records had a version. */
const oldInstance = {
  instance: {
    id: 'web-1',
    name: 'web',
    kind: 'typical',
    address: '10.0.0.1',
    port: 8080,
    tags: ['v1'],
    meta: { team: 'a' },
    namespace: 'default',
    partition: 'default',
    datacenter: 'dc1',
    taggedAddresses: {},
    checks: [
      {
        checkId: 'service:web-1',
        name: 'ttl',
        serviceId: 'web-1',
        status: 'passing',
        output: '',
        ttlSeconds: 30,
        expiresAt: Date.now() + 3_600_000,
      },
    ],
    createIndex: 3,
    modifyIndex: 4,
  },
};

/** A peering record as written before: Consul's PascalCase, no version. */
const oldPeering = {
  ID: 'a6f3c1de-0000-4000-8000-000000000001',
  Name: 'dc-b',
  State: 'ACTIVE',
  PeerID: '',
  PeerServerName: '',
  PeerServerAddresses: [],
  PeerCAPems: ['-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n'],
  PeerTrustDomain: 'b.consul',
  Meta: { env: 'test' },
  Remote: { Partition: 'default', Datacenter: 'dc-b' },
  StreamStatus: {
    ImportedServices: ['api'],
    ExportedServices: [],
    LastHeartbeat: '2026-01-01T00:00:00.000Z',
  },
  CreateIndex: 5,
  ModifyIndex: 9,
};

/** Imported instances as written before: the bare array. */
const oldImported = [
  {
    ...oldInstance.instance,
    id: 'api-1',
    name: 'api',
    tags: [],
    meta: {},
    checks: [],
    createIndex: 0,
    modifyIndex: 0,
    peerName: 'dc-b',
    peerMeta: { sni: ['api.default.dc-b'], spiffeId: ['spiffe://b/api'], protocol: 'tcp' },
  },
];

async function putRaw(key: string, value: JsonValue): Promise<void> {
  await store.put(key, value);
}

describe('records written before versions existed', () => {
  it('load as version 1: catalog instance, peering, acceptor secrets, imports, proxy token', async () => {
    await putRaw('catalog/instances/web-1', oldInstance);
    await putRaw('peering/peerings/dc-b', oldPeering);
    await putRaw(`peering/secrets/${oldPeering.ID}`, {
      role: 'acceptor',
      activeStreamSha256: 'ab'.repeat(32),
    });
    await putRaw('peering/imported/dc-b/api', oldImported);
    await putRaw('acl/tokens/acc-1', {
      accessorId: 'acc-1',
      proxyId: 'web-1-sidecar',
      secretHash: 'cd'.repeat(32),
      createTime: '2026-01-01T00:00:00.000Z',
    });

    const catalog = await Catalog.open(store, { datacenter: 'dc1', logger: silentLogger() });
    expect(catalog.instance('web-1')).toEqual(oldInstance.instance);
    await catalog.close();

    const peerings = await Peerings.open(store, { local, logger: silentLogger() });
    // Version 1 peerings had the API's PascalCase names; the domain type is camelCase (v2).
    expect(peerings.read('dc-b')).toEqual({
      id: oldPeering.ID,
      name: 'dc-b',
      state: 'ACTIVE',
      peerId: '',
      peerServerName: '',
      peerServerAddresses: [],
      peerCaPems: oldPeering.PeerCAPems,
      peerTrustDomain: 'b.consul',
      meta: { env: 'test' },
      remote: { partition: 'default', datacenter: 'dc-b' },
      streamStatus: {
        importedServices: ['api'],
        exportedServices: [],
        lastHeartbeat: '2026-01-01T00:00:00.000Z',
      },
      createIndex: 5,
      modifyIndex: 9,
    });
    await peerings.close();

    const imported = await ImportedServices.open(store);
    expect(imported.instancesOf('dc-b', 'api')).toEqual(oldImported);

    const tokens = await openProxyTokens(store, { logger: silentLogger() });
    expect(tokens.list()).toEqual([
      { accessorId: 'acc-1', proxyId: 'web-1-sidecar', createTime: '2026-01-01T00:00:00.000Z' },
    ]);
    tokens.close();
  });

  it('are rewritten with their version on the next write (peerings, imports: the new shape)', async () => {
    await putRaw('peering/imported/dc-b/api', oldImported);
    const imported = await ImportedServices.open(store);
    await imported.replace('dc-b', 'api', imported.instancesOf('dc-b', 'api'));
    expect(await store.get('peering/imported/dc-b/api')).toEqual({
      instances: oldImported,
      v: 2,
    });

    await putRaw('peering/peerings/dc-b', oldPeering);
    const peerings = await Peerings.open(store, { local, logger: silentLogger() });
    await peerings.setState('dc-b', 'FAILING', 'stream closed');
    expect(await store.get('peering/peerings/dc-b')).toMatchObject({
      v: 2,
      name: 'dc-b',
      state: 'FAILING',
      streamStatus: { importedServices: ['api'], lastError: 'stream closed' },
    });
    await peerings.close();

    const catalog = await Catalog.open(store, { datacenter: 'dc1', logger: silentLogger() });
    await catalog.register({ Name: 'db', ID: 'db-1', Port: 5432 });
    expect(await store.get('catalog/instances/db-1')).toMatchObject({
      v: 1,
      instance: { id: 'db-1' },
    });
    await catalog.close();
  });
});

describe('a corrupt record', () => {
  it('fails opening the catalog with the key and the field, and leaves the data as it was', async () => {
    const bad = { instance: { ...oldInstance.instance, port: '8080' } };
    await putRaw('catalog/instances/web-1', bad);
    const opening = Catalog.open(store, { datacenter: 'dc1', logger: silentLogger() });
    await expect(opening).rejects.toThrow(StoredRecordError);
    await expect(opening).rejects.toThrow(
      'stored catalog instance "catalog/instances/web-1" is invalid: instance.port: Invalid input: expected number, received string',
    );
    expect(await store.get('catalog/instances/web-1')).toEqual(bad);
  });

  it('names every bad field, nested paths and unknown fields included', async () => {
    await putRaw('peering/peerings/dc-b', {
      ...oldPeering,
      State: 'SLEEPING',
      StreamStatus: { ...oldPeering.StreamStatus, ImportedServices: [1] },
      Extra: true,
    });
    const err = await Peerings.open(store, { local, logger: silentLogger() }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(StoredRecordError);
    const message = (err as StoredRecordError).message;
    expect(message).toMatch(/^stored peering "peering\/peerings\/dc-b" is invalid: /);
    expect(message).toContain('State: Invalid option');
    expect(message).toContain('StreamStatus.ImportedServices[0]: Invalid input: expected string');
    expect(message).toContain('Unrecognized key: "Extra"');
    expect((err as StoredRecordError).key).toBe('peering/peerings/dc-b');
    expect((err as StoredRecordError).field).toBe('State');
  });

  it('of a newer version is refused, saying so', async () => {
    await putRaw('catalog/config/mesh/mesh', { v: 7, entry: {}, createIndex: 1, modifyIndex: 1 });
    await expect(
      Catalog.open(store, { datacenter: 'dc1', logger: silentLogger() }),
    ).rejects.toThrow(
      'stored config entry "catalog/config/mesh/mesh" has version 7, newer than this isthmus reads (1): run a newer isthmus on this data directory',
    );
  });

  it('among imported services is logged and skipped; the others load', async () => {
    await putRaw('peering/imported/dc-b/api', oldImported);
    await putRaw('peering/imported/dc-b/web', { v: 2, instances: [{ id: 'web-1' }] });
    const lines: string[] = [];
    const logger = createLogger('warn', { write: (line: string) => void lines.push(line) });
    const imported = await ImportedServices.open(store, { logger });
    expect(imported.serviceNames('dc-b')).toEqual(['api']);
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({
      msg: 'invalid imported service record skipped',
      err: {
        message: expect.stringContaining(
          '"peering/imported/dc-b/web" is invalid: instances[0].name',
        ),
      },
    });
  });
});

describe('RecordCollection', () => {
  const kind = {
    what: 'widget',
    version: 2,
    schema: z.strictObject({ name: z.string(), size: z.number() }),
    upgrade: (record: unknown) => z.strictObject({ name: z.string() }).parse(record),
  };
  const widgets = new RecordCollection(
    { ...kind, upgrade: (r: unknown) => ({ ...kind.upgrade(r), size: 0 }) },
    'widgets/',
  );

  it('upgrades older versions through the hook before validating', async () => {
    await putRaw('widgets/a', { name: 'a' });
    await putRaw('widgets/b', { v: 1, name: 'b' });
    await putRaw('widgets/c', { v: 2, name: 'c', size: 3 });
    expect((await widgets.list(store)).map((kv) => [kv.id, kv.value])).toEqual([
      ['a', { name: 'a', size: 0 }],
      ['b', { name: 'b', size: 0 }],
      ['c', { name: 'c', size: 3 }],
    ]);
  });

  it('reports a failed upgrade with the path of the old shape', async () => {
    await putRaw('widgets/a', { name: 5 });
    await expect(widgets.get(store, 'a')).rejects.toThrow(
      'stored widget "widgets/a" is invalid: name: Invalid input: expected string, received number',
    );
  });

  it('refuses to write a record it could not read back', async () => {
    const bad = { name: 'x', size: Number.NaN };
    await expect(widgets.save(store, 'x', bad)).rejects.toThrow(
      /refusing to write an invalid record: stored widget "widgets\/x" is invalid: size/,
    );
    expect(await store.get('widgets/x')).toBeUndefined();
  });
});
