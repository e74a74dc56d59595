import type { CertificateAuthority } from '../ca/index.js';
import {
  instanceHealth,
  type CatalogReader,
  type ServiceInstance,
  type Upstream,
} from '../catalog/types.js';
import { IsthmusError } from '../errors.js';
import { Secret } from '../gen/envoy/extensions/transport_sockets/tls/v3/secret.js';
import { exportedNamesFor } from '../peering/exports.js';
import type { ImportedServices } from '../peering/imported.js';
import type { Peerings } from '../peering/peerings.js';
import { upstreamGatewayMode } from '../catalog/lookups.js';
import { subscribes, type StreamStatus } from '../xds/ads/stream-status.js';
import { entriesOf } from '../xds/cache/proxy-view.js';
import { newestStreams, resourceStatuses } from '../xds/status.js';
import { TypeUrl, shortName } from '../xds/types.js';
import { certFact } from './certs.js';
import type { GatewayFact, PeeringFacts } from './peering-checks.js';
import {
  type NackFact,
  type ProxyFacts,
  type ResourceFact,
  type SessionFact,
  type UpstreamFact,
  type XdsShortType,
  checkedTypes,
} from './proxy-checks.js';

/** The live state the checklists read (the composition root passes the server's parts). */
export interface TroubleshootSources {
  readonly datacenter: string;
  readonly catalog: CatalogReader;
  readonly ca: Pick<CertificateAuthority, 'roots'>;
  readonly peerings: Pick<Peerings, 'read'>;
  readonly imported: Pick<ImportedServices, 'serviceNames' | 'instancesOf'>;
  readonly xds: { streamStatuses(): readonly StreamStatus[] };
  readonly heartbeatTimeoutMs: number;
  readonly now?: (() => number) | undefined;
}

/** Facts for the peering checklist; not_found (with a hint) when no peering has that name. */
export function gatherPeeringFacts(src: TroubleshootSources, name: string): PeeringFacts {
  const peering = src.peerings.read(name);
  if (!peering)
    throw new IsthmusError(
      'not_found',
      `peering ${JSON.stringify(name)} not found (see isthmus peering list)`,
    );
  const roots = src.ca.roots().roots;
  return {
    datacenter: src.datacenter,
    now: (src.now ?? Date.now)(),
    heartbeatTimeoutMs: src.heartbeatTimeoutMs,
    peering,
    exported: exportedNamesFor(src.catalog, name),
    exportEntryExists: src.catalog.configEntry('exported-services', 'default') !== undefined,
    imported: src.imported.serviceNames(name),
    localGateways: localGateways(src.catalog, src.datacenter),
    localModeUpstreams: localModeUpstreamsTo(src.catalog, name),
    localRoots: roots.map((r) => certFact(`local root ${r.id}`, r.certPem)),
    peerRoots: peering.peerCaPems.map((pem, i) => certFact(`peer root #${i + 1}`, pem)),
  };
}

/**
 * Facts for the proxy checklist; not_found when the ID is neither registered nor connected (a
 * connected but unregistered proxy gets a checklist that says so).
 */
export function gatherProxyFacts(src: TroubleshootSources, id: string): ProxyFacts {
  const instance = src.catalog.instance(id);
  const session = newestStreams(src.xds.streamStatuses()).get(id);
  if (!instance && !session) {
    throw new IsthmusError(
      'not_found',
      `proxy ${JSON.stringify(id)} is neither registered nor connected (see isthmus services list)`,
    );
  }
  const roots = src.ca.roots().roots.map((r) => r.certPem);
  return {
    id,
    datacenter: src.datacenter,
    now: (src.now ?? Date.now)(),
    instance: instance && {
      kind: instance.kind,
      name: instance.name,
      destination: instance.proxy?.destinationServiceName ?? '',
    },
    session: session && sessionFact(session, roots),
    upstreams: (instance?.proxy?.upstreams ?? []).map((u) => upstreamFact(src, instance!, u)),
    localGateways: localGateways(src.catalog, src.datacenter),
  };
}

/**
 * `<proxy> → <service>` for each local upstream to the peer whose traffic leaves through our own
 * gateway (mode local).
 */
function localModeUpstreamsTo(catalog: CatalogReader, peer: string): string[] {
  const out: string[] = [];
  for (const proxy of catalog.instancesOfKind('connect-proxy')) {
    for (const u of proxy.proxy?.upstreams ?? []) {
      if (u.destinationPeer === peer && upstreamGatewayMode(catalog, proxy, u) === 'local')
        out.push(`${proxy.id} → ${u.destinationName}`);
    }
  }
  return out.sort();
}

function localGateways(catalog: CatalogReader, datacenter: string): GatewayFact[] {
  return catalog
    .instancesOfKind('mesh-gateway')
    .filter((g) => !g.datacenter || g.datacenter === datacenter)
    .map((g) => {
      const wan = g.taggedAddresses.wan;
      return {
        id: g.id,
        health: instanceHealth(g),
        wan: wan?.address ? `${wan.address}:${wan.port || g.port}` : undefined,
      };
    });
}

function sessionFact(session: StreamStatus, roots: readonly string[]): SessionFact {
  const statuses = resourceStatuses(session);
  const resources = Object.fromEntries(
    checkedTypes.map((t) => [t, [] as ResourceFact[]]),
  ) as Record<XdsShortType, ResourceFact[]>;
  for (const s of statuses) {
    // EDS, RDS and SDS are asked for by name: what Envoy never asked for is not owed to it.
    const asked = subscribes(session.types.get(s.typeUrl), s.name);
    const status = s.status === 'NOT_SENT' && !asked ? 'NOT_REQUESTED' : s.status;
    resources[shortName[s.typeUrl]].push({ name: s.name, status });
  }
  const nacks: NackFact[] = [];
  for (const [typeUrl, ts] of session.types) {
    if (!ts.lastNack) continue;
    const type = shortName[typeUrl];
    const rejected = statuses
      .filter((s) => s.typeUrl === typeUrl && s.status === 'ERROR')
      .map((s) => s.name);
    nacks.push({
      type,
      message: ts.lastNack.message,
      resources: rejected,
      at: ts.lastNack.at.toISOString(),
    });
  }
  const secrets = entriesOf(session.view, TypeUrl.secret);
  const leafEntry = [...secrets.values()].find((e) => e.name.startsWith('leaf:'));
  const leafPem = leafEntry ? leafPemOf(leafEntry.messageBytes) : undefined;
  return {
    api: session.api,
    connectedAt: session.connectedAt.toISOString(),
    resources,
    nacks,
    leaf: leafPem === undefined ? undefined : certFact('leaf', leafPem, roots),
    rootsSecrets: [...secrets.keys()].filter((n) => n.startsWith('roots:')).sort(),
  };
}

function leafPemOf(bytes: Uint8Array): string | undefined {
  const type = Secret.decode(bytes).type;
  if (type?.$case !== 'tlsCertificate') return undefined;
  const spec = type.value.certificateChain?.specifier;
  if (spec?.$case === 'inlineString') return spec.value;
  if (spec?.$case === 'inlineBytes') return Buffer.from(spec.value).toString('utf8');
  return undefined;
}

/**
 * The mesh gateway mode in force for an upstream (upstream, proxy, service-defaults,
 * proxy-defaults).
 */
function upstreamFact(src: TroubleshootSources, proxy: ServiceInstance, u: Upstream): UpstreamFact {
  const { catalog } = src;
  const gatewayMode = upstreamGatewayMode(catalog, proxy, u);
  const namespace = u.destinationNamespace || 'default';
  const imported = u.destinationPeer
    ? src.imported.instancesOf(u.destinationPeer, u.destinationName, namespace)
    : [];
  return {
    service: u.destinationName,
    peer: u.destinationPeer,
    datacenter: u.datacenter,
    gatewayMode,
    peeringState: u.destinationPeer ? src.peerings.read(u.destinationPeer)?.state : undefined,
    imported: imported.length > 0,
    importedWithMesh: imported.some(
      (i) =>
        i.kind === 'connect-proxy' &&
        (i.peerMeta?.sni.length ?? 0) > 0 &&
        instanceHealth(i) !== 'critical',
    ),
    remoteGateways: u.datacenter
      ? catalog
          .instancesOfKind('mesh-gateway')
          .filter((g) => g.datacenter === u.datacenter && instanceHealth(g) !== 'critical').length
      : 0,
  };
}
