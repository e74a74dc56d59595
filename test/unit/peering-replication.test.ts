import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { CaEvent } from '../../src/ca/index.js';
import type { ExportedService } from '../../src/gen/isthmus/peering/v1/peering.js';
import { exportedNamesFor, exportedServiceFor } from '../../src/peering/exports.js';
import { ImportedServices, importedInstancesOf } from '../../src/peering/imported.js';
import { ExportSource, ImportSink, validateTrustBundle } from '../../src/peering/replication.js';
import { ResourceUrl } from '../../src/peering/stream/resources.js';
import type { ResourceChange } from '../../src/peering/stream/types.js';
import { openLmdbStore, type Store } from '../../src/store/index.js';
import { FakeCatalog } from '../helpers/fake-catalog.js';
import { RecordPeerings } from '../helpers/peering-stream.js';

const exportEntry = (services: { name: string; peers: string[] }[]) => ({
  kind: 'exported-services' as const,
  name: 'default',
  services: services.map((s) => ({
    name: s.name,
    namespace: 'default',
    consumers: s.peers.map((peer) => ({ peer })),
  })),
});

const critical = [
  { checkId: 'c', name: 'c', serviceId: 'x', status: 'critical' as const, output: '' },
];

describe('exports', () => {
  it('resolves the exported-services entry per consumer peer, the wildcard included', () => {
    const catalog = new FakeCatalog('dc-a');
    catalog.upsert({ id: 'api-1', name: 'api' });
    catalog.upsert({ id: 'web-1', name: 'web' });
    catalog.upsert({ id: 'gw', name: 'mesh-gateway', kind: 'mesh-gateway' });
    expect(exportedNamesFor(catalog, 'east')).toEqual([]);
    catalog.putEntry(
      exportEntry([
        { name: 'api', peers: ['east'] },
        { name: 'db', peers: ['west'] },
      ]),
    );
    expect(exportedNamesFor(catalog, 'east')).toEqual(['api']);
    expect(exportedNamesFor(catalog, 'west')).toEqual(['db']);
    catalog.putEntry(exportEntry([{ name: '*', peers: ['east'] }]));
    expect(exportedNamesFor(catalog, 'east')).toEqual(['api', 'web']);
    expect(exportedNamesFor(catalog, 'west')).toEqual([]);
  });

  it('sends non-critical instances, and a synthetic sidecar per healthy local mesh gateway (WAN address, else its address)', () => {
    const catalog = new FakeCatalog('dc-a');
    catalog.upsert({ id: 'api-1', name: 'api', address: '10.0.0.1', port: 80 });
    catalog.upsert({ id: 'api-2', name: 'api', address: '10.0.0.2', port: 80, checks: critical });
    const ctx = { catalog, trustDomain: 'a.consul', datacenter: 'dc-a' };
    expect(exportedServiceFor(ctx, 'east', 'api').instances.map((i) => i.id)).toEqual(['api-1']);

    catalog.upsert({
      id: 'api-1-sidecar',
      name: 'api-sidecar-proxy',
      kind: 'connect-proxy',
      proxy: { destinationServiceName: 'api' } as never,
    });
    catalog.upsert({
      id: 'gw-wan',
      name: 'mesh-gateway',
      kind: 'mesh-gateway',
      address: '10.0.9.1',
      port: 8443,
      taggedAddresses: { wan: { address: '198.51.100.1', port: 443 } },
    });
    catalog.upsert({
      id: 'gw-lan',
      name: 'mesh-gateway',
      kind: 'mesh-gateway',
      address: '10.0.9.2',
      port: 8443,
    });
    catalog.upsert({
      id: 'gw-down',
      name: 'mesh-gateway',
      kind: 'mesh-gateway',
      address: '10.0.9.3',
      port: 8443,
      checks: critical,
    });
    catalog.upsert({
      id: 'gw-remote',
      name: 'mesh-gateway',
      kind: 'mesh-gateway',
      address: '10.1.9.1',
      port: 8443,
      datacenter: 'dc-z',
    });
    const sidecars = exportedServiceFor(ctx, 'east', 'api').instances.filter(
      (i) => i.kind === 'connect-proxy',
    );
    expect(sidecars.map((i) => `${i.address}:${i.port}`)).toEqual([
      '10.0.9.2:8443',
      '198.51.100.1:443',
    ]);
    expect(sidecars[0]).toMatchObject({
      name: 'api-sidecar-proxy',
      destinationServiceName: 'api',
      peerMeta: {
        sni: ['api.default.default.east.external.a.consul'],
        spiffeId: [
          'spiffe://a.consul/ns/default/dc/dc-a/svc/api',
          'spiffe://a.consul/gateway/mesh/dc/dc-a',
        ],
        protocol: 'tcp',
      },
    });
  });

  it('ExportSource sends a change only when it differs, deletes a service no longer exported, and re-sends the bundle on roots-changed', () => {
    const catalog = new FakeCatalog('dc-a');
    catalog.upsert({ id: 'api-1', name: 'api' });
    catalog.putEntry(exportEntry([{ name: 'api', peers: ['east'] }]));
    let roots = ['ROOT-1'];
    const caListeners: ((e: CaEvent) => void)[] = [];
    const ca = {
      trustDomain: 'a.consul',
      roots: () =>
        ({
          trustDomain: 'a.consul',
          activeRootId: 'r',
          roots: roots.map((certPem) => ({ certPem })),
        }) as never,
      subscribe: (l: (e: CaEvent) => void) => (caListeners.push(l), () => undefined),
    };
    const exported: string[][] = [];
    const source = new ExportSource({
      catalog,
      ca,
      datacenter: 'dc-a',
      peeringName: 'east',
      serverAddresses: () => [],
      onExported: (n) => exported.push([...n]),
    });
    const services: ResourceChange[] = [];
    const bundles: ResourceChange[] = [];
    source.subscribe(ResourceUrl.exportedService, (c) => services.push(c));
    source.subscribe(ResourceUrl.exportedServiceList, () => undefined);
    source.subscribe(ResourceUrl.trustBundle, (c) => bundles.push(c));
    expect(services.map((c) => `${c.operation} ${c.resourceId}`)).toEqual(['upsert api']);
    catalog.upsert({ id: 'unrelated', name: 'other' });
    expect(services).toHaveLength(1);
    catalog.upsert({ id: 'api-2', name: 'api' });
    expect((services[1]!.resource as ExportedService).instances.map((i) => i.id)).toEqual([
      'api-1',
      'api-2',
    ]);
    catalog.putEntry(exportEntry([{ name: 'other', peers: ['east'] }]));
    expect(services.slice(2).map((c) => `${c.operation} ${c.resourceId}`)).toEqual([
      'upsert other',
      'delete api',
    ]);
    expect(exported.at(-1)).toEqual(['other']);

    roots = ['ROOT-1', 'ROOT-2'];
    caListeners.forEach((l) => l({ kind: 'roots-changed', roots: ca.roots() }));
    expect(bundles.map((c) => (c.resource as { rootPems: string[] }).rootPems)).toEqual([
      ['ROOT-1'],
      ['ROOT-1', 'ROOT-2'],
    ]);
  });
});

describe('validateTrustBundle', () => {
  it('names every problem of a bundle with its field', () => {
    expect(validateTrustBundle({ trustDomain: 'e.consul', rootPems: [] })).toEqual([
      { field: 'root_pems', problem: 'a trust bundle needs at least one root' },
    ]);
    expect(validateTrustBundle({ trustDomain: '', rootPems: ['junk', 'more junk'] })).toEqual([
      { field: 'trust_domain', problem: 'missing' },
      { field: 'root_pems[0]', problem: 'not a PEM CA certificate' },
      { field: 'root_pems[1]', problem: 'not a PEM CA certificate' },
    ]);
  });
});

/** The LMDB store of the test running, in a temporary directory: closed and removed after it. */
let store: Store | undefined;
let dir: string | undefined;
afterEach(async () => {
  await store?.close();
  store = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

describe('ImportedServices', () => {
  it('lists the services of a peer, sorted, as they are added, updated and removed', async () => {
    dir = mkdtempSync(join(tmpdir(), 'isthmus-imported-'));
    store = await openLmdbStore(dir);
    const imported = await ImportedServices.open(store);
    const one = (service: string, address: string) =>
      importedInstancesOf('east', 'dc-e', {
        service: { name: service, namespace: 'default', partition: 'default' },
        instances: [
          {
            id: `${service}-1`,
            name: service,
            kind: 'typical',
            address,
            port: 8080,
            meta: {},
            health: 'passing',
            destinationServiceName: '',
          },
        ],
      });
    await imported.write('east', new Map([['web', one('web', '10.0.0.1')]]));
    expect(imported.serviceNames('east')).toEqual(['web']);
    await imported.write('east', new Map([['api', one('api', '10.0.0.2')]]));
    expect(imported.serviceNames('east')).toEqual(['api', 'web']);
    await imported.write('east', new Map([['api', one('api', '10.0.0.3')]]));
    expect(imported.serviceNames('east')).toEqual(['api', 'web']);
    expect(imported.instancesOf('east', 'api').map((i) => i.address)).toEqual(['10.0.0.3']);
    await imported.remove('east', 'web');
    expect(imported.serviceNames('east')).toEqual(['api']);
    await imported.dropPeer('east');
    expect(imported.serviceNames('east')).toEqual([]);
    expect((await ImportedServices.open(store)).serviceNames('east')).toEqual([]);
  });
});

describe('ImportSink', () => {
  it('keeps exactly the latest payload per service, drops services that leave the list, counts them, and survives a reopen', async () => {
    dir = mkdtempSync(join(tmpdir(), 'isthmus-import-'));
    store = await openLmdbStore(dir);
    const imported = await ImportedServices.open(store);
    const peerings = new RecordPeerings('east', 'dc-e');
    const sink = new ImportSink({
      peerings,
      imported,
      peeringName: 'east',
      ownTrustDomain: 'local.consul',
    });
    const instance = (id: string, health = 'passing') => ({
      id,
      name: 'api',
      kind: 'typical',
      address: '10.0.0.1',
      port: 80,
      meta: {},
      health,
      destinationServiceName: '',
    });
    const upsert = (ids: string[]): ResourceChange => ({
      resourceId: 'api',
      operation: 'upsert',
      resource: {
        service: { name: 'api', namespace: 'default', partition: 'default' },
        instances: ids.map((id) => instance(id)),
      },
    });

    await sink.apply(ResourceUrl.exportedServiceList, {
      resourceId: 'exported-services',
      operation: 'upsert',
      resource: { services: [{ name: 'api', namespace: 'default', partition: 'default' }] },
    });
    await sink.apply(ResourceUrl.exportedService, upsert(['a', 'b']));
    await sink.apply(ResourceUrl.exportedService, upsert(['b', 'c']));
    expect(
      imported.instancesOf('east', 'api').map((i) => [i.id, i.datacenter, i.peerName]),
    ).toEqual([
      ['b', 'dc-e', 'east'],
      ['c', 'dc-e', 'east'],
    ]);
    expect(peerings.record.streamStatus.importedServices).toEqual(['api']);
    expect(
      (await ImportedServices.open(store)).instancesOf('east', 'api').map((i) => i.id),
    ).toEqual(['b', 'c']);

    await expect(
      sink.apply(ResourceUrl.trustBundle, {
        resourceId: 'e.consul',
        operation: 'upsert',
        resource: { trustDomain: 'e.consul', rootPems: ['not a pem'] },
      }),
    ).rejects.toMatchObject({
      code: 'invalid_argument',
      field: 'root_pems[0]',
      message: 'root_pems[0]: not a PEM CA certificate',
    });
    await expect(
      sink.apply(ResourceUrl.exportedService, {
        resourceId: 'api',
        operation: 'upsert',
        resource: {
          service: { name: 'api', namespace: 'default', partition: 'default' },
          instances: [{ ...instance('x'), id: '' }],
        },
      }),
    ).rejects.toMatchObject({
      code: 'invalid_argument',
      field: 'instances[0].id',
      message:
        'instances[0].id: "": 1-512 letters, digits, ".", "_", ":" or "-", starting with a letter or digit',
    });

    const addresses = (list: string[]): ResourceChange => ({
      resourceId: 'server-addresses',
      operation: 'upsert',
      resource: { addresses: list },
    });
    await sink.apply(ResourceUrl.serverAddresses, addresses(['10.9.9.9:8503']));
    await sink.apply(ResourceUrl.serverAddresses, addresses([]));
    expect(peerings.updates).toEqual([{ peerServerAddresses: ['10.9.9.9:8503'] }]);
    peerings.record = { ...peerings.record, manualServerAddresses: true };
    await sink.apply(ResourceUrl.serverAddresses, addresses(['10.9.9.8:8503']));
    expect(peerings.updates).toHaveLength(1); // the token's manual addresses stay
    await expect(
      sink.apply(ResourceUrl.serverAddresses, addresses(['nope'])),
    ).resolves.toBeUndefined();

    await sink.apply(ResourceUrl.exportedServiceList, {
      resourceId: 'exported-services',
      operation: 'upsert',
      resource: { services: [] },
    });
    expect(imported.instancesOf('east', 'api')).toEqual([]);
    expect(peerings.record.streamStatus.importedServices).toEqual([]);
    expect((await ImportedServices.open(store)).serviceNames('east')).toEqual([]);
  });
});
