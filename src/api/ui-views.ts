import type { CaRoots } from '../ca/index.js';
import { type CatalogReader, instanceHealth, type ServiceInstance } from '../catalog/types.js';
import type { ImportedInstance } from '../peering/imported.js';
import type { Peering } from '../peering/types.js';
import { intentionVerdict } from '../snapshot/intentions.js';
import type { ServerJson } from './operator-routes.js';
import { exportedServices, peeringJson } from './peering-routes.js';
import type {
  UiEdgeJson,
  UiInstanceJson,
  UiNodeJson,
  UiOverviewJson,
  UiPeeringJson,
  UiServiceJson,
  UiServicesJson,
  UiTopologyJson,
} from './ui-json.js';

/**
 * The aggregates the web UI reads (issue 17; docs/architecture.md §2 "Web UI"): each one page's
 * worth of state in one answer, built from the same parts as the rest of the API. Pure: the
 * routes in ui-routes.ts pass the live parts and the clock.
 */
export interface UiSources {
  readonly datacenter: string;
  readonly version: string;
  /** This server's listen addresses, as `host:port`. */
  readonly addresses: () => {
    readonly http: string;
    readonly xds: string;
    readonly peering: string;
  };
  readonly catalog: CatalogReader;
  readonly roots: () => CaRoots;
  readonly peerings: { list(): readonly Peering[] };
  readonly imported: { allOf(peer: string): readonly ImportedInstance[] };
  /** Node IDs of the proxies connected over xDS. */
  readonly connectedProxies: () => readonly string[];
  readonly healthyWindowMs: number;
  /** Every live server of the cluster (absent: this one alone). */
  readonly servers?: () => readonly ServerJson[];
}

export function uiOverview(src: UiSources, now: number): UiOverviewJson {
  const roots = src.roots();
  const peerings = src.peerings
    .list()
    .map((p) => uiPeering(p, now, src.healthyWindowMs))
    .sort((a, b) => Number(a.Healthy) - Number(b.Healthy) || compare(a.Name, b.Name));
  return {
    Datacenter: src.datacenter,
    TrustDomain: roots.trustDomain,
    DefaultIntentionAction:
      src.catalog.configEntry('mesh', 'mesh')?.defaultIntentionAction ?? 'allow',
    Roots: roots.roots.map((r) => ({
      ID: r.id,
      Name: r.name ?? r.id,
      Active: r.active,
      NotAfter: r.notAfter.toISOString(),
      ExpiresInMs: r.notAfter.getTime() - now,
    })),
    Servers: uiServers(src),
    Peerings: peerings,
  };
}

/** The cluster's live servers, this one marked; only this one's proxies are counted here. */
function uiServers(src: UiSources): UiOverviewJson['Servers'] {
  const connected = new Set(src.connectedProxies()).size;
  const servers = src.servers?.() ?? [];
  if (servers.length === 0)
    return [
      {
        Name: `${src.datacenter} (this server)`,
        Version: src.version,
        HTTP: src.addresses().http,
        XDS: src.addresses().xds,
        Peering: src.addresses().peering,
        Leader: true,
        ConnectedProxies: connected,
      },
    ];
  return servers.map((s) => ({
    Name: s.Self ? `${s.Name} (this server)` : s.Name,
    Version: s.Version,
    HTTP: s.HTTPAddr,
    XDS: s.XdsAddr,
    Peering: s.PeeringAddr,
    Leader: s.Leader,
    ConnectedProxies: s.Self ? connected : null,
  }));
}

function uiPeering(p: Peering, now: number, healthyWindowMs: number): UiPeeringJson {
  const { PeerCAPems: _, ...json } = peeringJson(p, now, healthyWindowMs);
  const beat = json.StreamStatus.LastHeartbeat;
  return {
    ...json,
    ImportedCount: json.StreamStatus.ImportedServices.length,
    ExportedCount: json.StreamStatus.ExportedServices.length,
    HeartbeatAgeMs: beat ? Math.max(0, now - Date.parse(beat)) : null,
  };
}

export function uiServices(src: UiSources): UiServicesJson {
  const exported = new Map(
    exportedServices(src.catalog).map((e) => [e.Service, e.Consumers.Peers]),
  );
  const local = servicesOf(src.catalog.allInstances(), (name) => exported.get(name) ?? []);
  const imported = src.peerings
    .list()
    .map((p) => p.name)
    .sort(compare)
    .map((Peer) => ({ Peer, Services: servicesOf(src.imported.allOf(Peer), () => []) }));
  return { Local: local, Imported: imported };
}

/** Groups instances by service: typical instances and gateways, with the sidecars for each. */
function servicesOf(
  all: readonly ServiceInstance[],
  exportedTo: (name: string) => readonly string[],
): UiServiceJson[] {
  const byName = new Map<
    string,
    { kind: UiServiceJson['Kind']; own: ServiceInstance[]; sidecars: ServiceInstance[] }
  >();
  const entry = (name: string) => {
    const e = byName.get(name) ?? { kind: 'service' as const, own: [], sidecars: [] };
    byName.set(name, e);
    return e;
  };
  for (const i of all) {
    if (i.kind === 'connect-proxy')
      entry(i.proxy?.destinationServiceName ?? i.name).sidecars.push(i);
    else {
      const e = entry(i.name);
      e.own.push(i);
      if (i.kind === 'mesh-gateway') e.kind = 'mesh-gateway';
    }
  }
  return [...byName]
    .sort(([a], [b]) => compare(a, b))
    .map(([Name, e]) => ({
      Name,
      Kind: e.kind,
      Instances: e.own.map(instanceJson),
      Sidecars: e.sidecars.map(instanceJson),
      ExportedTo: exportedTo(Name),
    }));
}

function instanceJson(i: ServiceInstance): UiInstanceJson {
  const json: UiInstanceJson = {
    ID: i.id,
    Address: i.address,
    Port: i.port,
    Health: instanceHealth(i),
    Checks: i.checks.map((c) => ({ Name: c.name, Status: c.status })),
  };
  const ups = i.proxy?.upstreams;
  if (i.kind !== 'connect-proxy' || !ups) return json;
  return {
    ...json,
    Upstreams: ups.map((u) =>
      u.destinationPeer ? `${u.destinationName}?peer=${u.destinationPeer}` : u.destinationName,
    ),
  };
}

/** A topology node's ID: `api` for a local service, `a/api` for one imported from peer `a`. */
const nodeId = (name: string, peer: string) => (peer ? `${peer}/${name}` : name);

/**
 * Who may call whom: an edge for every intention source (its verdict is the intention's, by
 * precedence) and for every upstream a sidecar declares (the intentions' verdict, or the mesh
 * default). Calls into a peer's service are decided by that peer, so those edges are `remote`.
 */
export function uiTopology(src: UiSources): UiTopologyJson {
  const nodes = new Map<string, UiNodeJson>();
  const node = (Name: string, Peer: string): string => {
    const ID = nodeId(Name, Peer);
    if (!nodes.has(ID)) nodes.set(ID, { ID, Name, Peer });
    return ID;
  };
  const services = uiServices(src);
  for (const s of services.Local) if (s.Kind === 'service') node(s.Name, '');
  for (const p of services.Imported) for (const s of p.Services) node(s.Name, p.Peer);
  const edges = new Map<string, UiEdgeJson>();
  const add = (from: string, fromPeer: string, to: string, toPeer: string, upstream: boolean) => {
    const [From, To] = [node(from, fromPeer), node(to, toPeer)];
    const key = `${From}\0${To}`;
    const known = edges.get(key);
    if (known) {
      if (upstream) edges.set(key, { ...known, Upstream: true });
      return;
    }
    const verdict = toPeer
      ? undefined
      : intentionVerdict(src.catalog, to, { name: from, peer: fromPeer });
    edges.set(key, {
      From,
      To,
      Action: verdict?.action ?? 'remote',
      ...(verdict?.intention && { Intention: verdict.intention }),
      Upstream: upstream,
    });
  };
  for (const entry of src.catalog.configEntries('service-intentions'))
    for (const s of entry.sources) add(s.name, s.peer, entry.name, '', false);
  for (const s of services.Local)
    for (const sidecar of s.Sidecars)
      for (const u of sidecar.Upstreams ?? []) {
        const [name = u, peer = ''] = u.split('?peer=');
        add(s.Name, '', name, peer, true);
      }
  return {
    DefaultIntentionAction:
      src.catalog.configEntry('mesh', 'mesh')?.defaultIntentionAction ?? 'allow',
    Nodes: [...nodes.values()].sort((a, b) => compare(a.ID, b.ID)),
    Edges: [...edges.values()].sort((a, b) => compare(a.From, b.From) || compare(a.To, b.To)),
  };
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
