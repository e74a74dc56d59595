import { describe, expect, it } from 'vitest';
import { messageTypeRegistry } from '../../src/gen/typeRegistry.js';
import type { Leaf, CaRoots } from '../../src/ca/types.js';
import type { ServiceInstance } from '../../src/catalog/types.js';
import { Metrics } from '../../src/metrics.js';
import { buildSidecarSnapshot } from '../../src/snapshot/sidecar.js';
import { buildMeshGatewaySnapshot } from '../../src/snapshot/mesh-gateway.js';
import type { BuildContext } from '../../src/snapshot/context.js';
import { XdsCache } from '../../src/xds/cache/xds-cache.js';
import { resourcesFromSnapshot, ResourceEncoder } from '../../src/xds/resources/index.js';
import { TypeUrl } from '../../src/xds/types.js';
import { FakeCatalog } from '../helpers/fake-catalog.js';
import { validateMessage } from '../helpers/pgv.js';
import { lintResources } from '../helpers/xds-lint.js';
import { metricValue } from '../helpers/xds-harness.js';

const td = '11111111-2222-3333-4444-555555555555.consul';
const roots: CaRoots = {
  trustDomain: td,
  activeRootId: 'r1',
  roots: [
    {
      id: 'r1',
      certPem: '-----BEGIN CERTIFICATE-----\nroot\n-----END CERTIFICATE-----\n',
      active: true,
      notBefore: new Date(0),
      notAfter: new Date(0),
    },
  ],
};
const leafFor = (spiffeId: string): Leaf => ({
  spiffeId,
  certPem: '-----BEGIN CERTIFICATE-----\nleaf\n-----END CERTIFICATE-----\n',
  keyPem: '-----BEGIN PRIVATE KEY-----\nkey\n-----END PRIVATE KEY-----\n',
  serial: '1',
  rootId: 'r1',
  notBefore: new Date(0),
  notAfter: new Date(0),
});

function meshCatalog(): FakeCatalog {
  const c = new FakeCatalog('dc1');
  for (const [svc, port, addr] of [
    ['web', 8080, '10.0.0.3'],
    ['api', 9090, '10.0.0.4'],
    ['db', 5432, '10.0.0.5'],
  ] as const) {
    c.upsert({ id: `${svc}-1`, name: svc, port });
    c.upsert({
      id: `${svc}-1-sidecar-proxy`,
      name: `${svc}-sidecar-proxy`,
      kind: 'connect-proxy',
      address: addr,
      port: 21000 + (port % 100),
      proxy: {
        destinationServiceName: svc,
        destinationServiceId: `${svc}-1`,
        localServiceAddress: '127.0.0.1',
        localServicePort: port,
        meshGateway: { mode: '' },
        upstreams:
          svc === 'web'
            ? [
                {
                  destinationName: 'db',
                  destinationNamespace: '',
                  destinationPartition: '',
                  destinationPeer: '',
                  datacenter: '',
                  localBindAddress: '127.0.0.1',
                  localBindPort: 15432,
                  meshGateway: { mode: '' },
                },
                {
                  destinationName: 'api',
                  destinationNamespace: '',
                  destinationPartition: '',
                  destinationPeer: '',
                  datacenter: '',
                  localBindAddress: '127.0.0.1',
                  localBindPort: 19090,
                  meshGateway: { mode: '' },
                },
              ]
            : [],
      },
    });
  }
  c.putEntry({
    kind: 'service-defaults',
    name: 'api',
    namespace: 'default',
    partition: 'default',
    protocol: 'http',
    meshGateway: { mode: '' },
  });
  c.putEntry({
    kind: 'service-intentions',
    name: 'web',
    namespace: 'default',
    partition: 'default',
    sources: [
      { name: 'api', namespace: 'default', partition: 'default', peer: '', action: 'allow' },
      { name: '*', namespace: 'default', partition: 'default', peer: '', action: 'deny' },
    ],
  });
  c.upsert({
    id: 'gw-1',
    name: 'mesh-gateway',
    kind: 'mesh-gateway',
    address: '10.0.1.1',
    port: 8443,
    taggedAddresses: { wan: { address: '192.0.2.1', port: 443 } },
  });
  c.upsert({
    id: 'gw-dc2',
    name: 'mesh-gateway',
    kind: 'mesh-gateway',
    datacenter: 'dc2',
    address: '10.9.1.1',
    port: 8443,
    taggedAddresses: { wan: { address: '198.51.100.7', port: 443 } },
  });
  return c;
}

const ctx = (catalog: FakeCatalog): BuildContext => ({
  catalog,
  datacenter: 'dc1',
  trustDomain: td,
  roots,
  peerTrustDomain: () => undefined,
});

function decodeAll(cache: XdsCache, specs: ReturnType<typeof resourcesFromSnapshot>) {
  return specs.map((s) => {
    const encoded = cache.encode(s.build());
    const typeName = s.typeUrl.slice(s.typeUrl.lastIndexOf('/') + 1);
    return {
      typeUrl: s.typeUrl,
      name: s.name,
      bytes: encoded.bytes,
      message: messageTypeRegistry.get(typeName)!.decode(encoded.bytes) as Record<string, unknown>,
      typeName,
    };
  });
}

describe('snapshot → resources', () => {
  it('a sidecar with a TCP and an HTTP upstream is valid, consistent and lint-clean', () => {
    const catalog = meshCatalog();
    const web = catalog.instance('web-1-sidecar-proxy') as ServiceInstance;
    const { snapshot } = buildSidecarSnapshot(
      web,
      leafFor(`spiffe://${td}/ns/default/dc/dc1/svc/web`),
      ctx(catalog),
    );
    const resources = decodeAll(new XdsCache(), resourcesFromSnapshot(snapshot));
    for (const r of resources) expect(validateMessage(r.typeName, r.bytes), r.name).toEqual([]);
    expect(lintResources(resources)).toEqual([]);
    const byType = (t: string) => resources.filter((r) => r.typeUrl === t).map((r) => r.name);
    expect(byType(TypeUrl.cluster)).toEqual([
      `api.default.dc1.internal.${td}`,
      `db.default.dc1.internal.${td}`,
      'local_app',
    ]);
    expect(byType(TypeUrl.route)).toEqual(['api']);
    expect(byType(TypeUrl.listener)).toEqual([
      'api:127.0.0.1:19090',
      'db:127.0.0.1:15432',
      'public_listener:10.0.0.3:21080',
    ]);
    expect(byType(TypeUrl.secret)).toEqual([
      `leaf:spiffe://${td}/ns/default/dc/dc1/svc/web`,
      'roots:local',
    ]);
    new XdsCache().setProxyResources(
      'web',
      resources.map((r) => ({
        typeUrl: r.typeUrl as never,
        name: r.name,
        bytes: r.bytes,
        version: `v${r.name}`,
      })),
    );
  });

  it('a mesh gateway over three services and a remote datacenter is valid and lint-clean', () => {
    const catalog = meshCatalog();
    const { snapshot } = buildMeshGatewaySnapshot(catalog.instance('gw-1')!, ctx(catalog));
    const resources = decodeAll(new XdsCache(), resourcesFromSnapshot(snapshot));
    for (const r of resources) expect(validateMessage(r.typeName, r.bytes), r.name).toEqual([]);
    expect(lintResources(resources)).toEqual([]);
    // Only the remote datacenter: no chain routes a local service's internal SNI (§5), so the
    // gateway has no cluster for one.
    expect(resources.filter((r) => r.typeUrl === TypeUrl.cluster).map((r) => r.name)).toEqual([
      `dc2.internal.${td}`,
    ]);
  });

  it('is deterministic: the same catalog built in another order gives byte-identical resources', () => {
    const a = meshCatalog();
    const b = new FakeCatalog('dc1');
    for (const i of [...a.allInstances()].reverse()) b.upsert(i);
    for (const kind of ['service-intentions', 'service-defaults'] as const)
      for (const e of a.configEntries(kind)) b.putEntry(e);
    const bytes = (c: FakeCatalog, id: string) => {
      const inst = c.instance(id)!;
      const s =
        inst.kind === 'mesh-gateway'
          ? buildMeshGatewaySnapshot(inst, ctx(c)).snapshot
          : buildSidecarSnapshot(inst, leafFor('spiffe://x/svc'), ctx(c)).snapshot;
      return decodeAll(new XdsCache(), resourcesFromSnapshot(s)).map((r) =>
        Buffer.from(r.bytes).toString('base64'),
      );
    };
    expect(bytes(b, 'web-1-sidecar-proxy')).toEqual(bytes(a, 'web-1-sidecar-proxy'));
    expect(bytes(b, 'gw-1')).toEqual(bytes(a, 'gw-1'));
  });

  it('one instance going critical re-encodes exactly one resource (its EDS)', async () => {
    const catalog = meshCatalog();
    const metrics = new Metrics();
    const cache = new XdsCache(metrics);
    const encoder = new ResourceEncoder(cache);
    const build = () => {
      const web = catalog.instance('web-1-sidecar-proxy')!;
      return encoder.encodeFor(
        'web',
        resourcesFromSnapshot(
          buildSidecarSnapshot(web, leafFor('spiffe://x/svc/web'), ctx(catalog)).snapshot,
        ),
      );
    };
    const before = build();
    const encodes = async () =>
      (
        await Promise.all(
          ['SDS', 'CDS', 'EDS', 'LDS', 'RDS'].map((type) =>
            metricValue(metrics, 'isthmus_xds_resource_encodes_total', { type }),
          ),
        )
      ).reduce((a, b) => a + b);
    const n0 = await encodes();
    const db = catalog.instance('db-1')!;
    catalog.upsert({
      ...db,
      checks: [
        { checkId: 'service:db-1', name: 'ttl', serviceId: 'db-1', status: 'critical', output: '' },
      ],
    });
    const after = build();
    expect((await encodes()) - n0).toBe(1);
    const changed = after.filter((r, i) => r.version !== before[i]!.version);
    expect(changed.map((r) => [r.typeUrl, r.name])).toEqual([
      [TypeUrl.endpoint, `db.default.dc1.internal.${td}`],
    ]);
  });
});
