/**
 * xDS resource types as literal data: type URLs, short names, and the make-before-break push order
 * (Envoy xDS protocol "Eventual consistency considerations"; Consul agent/xds/delta.go
 * xDSUpdateOrder). The order of these tables matters.
 */
export const TypeUrl = {
  secret: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret',
  cluster: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  endpoint: 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
  listener: 'type.googleapis.com/envoy.config.listener.v3.Listener',
  route: 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
} as const;

export type XdsTypeUrl = (typeof TypeUrl)[keyof typeof TypeUrl];

/** Short names used in metrics labels, proxy status and the CLI. */
export const shortName: Readonly<Record<XdsTypeUrl, 'SDS' | 'CDS' | 'EDS' | 'LDS' | 'RDS'>> = {
  [TypeUrl.secret]: 'SDS',
  [TypeUrl.cluster]: 'CDS',
  [TypeUrl.endpoint]: 'EDS',
  [TypeUrl.listener]: 'LDS',
  [TypeUrl.route]: 'RDS',
};

export const allTypeUrls: readonly XdsTypeUrl[] = Object.values(TypeUrl);

/** Each ADS type URL, to its `TypeUrl` constant. */
const canonicalTypeUrls = new Map<string, XdsTypeUrl>(allTypeUrls.map((u) => [u, u]));

/**
 * The position of an ADS type in `allTypeUrls`. Called many times per push, so it compares the
 * TypeUrl constants (one pointer comparison each when given a constant) rather than hashing the
 * string; the order here is the order of `TypeUrl` (a test holds the two together).
 */
export function typeIndex(typeUrl: XdsTypeUrl): number {
  switch (typeUrl) {
    case TypeUrl.secret:
      return 0;
    case TypeUrl.cluster:
      return 1;
    case TypeUrl.endpoint:
      return 2;
    case TypeUrl.listener:
      return 3;
    case TypeUrl.route:
      return 4;
  }
  throw new TypeError(`not an ADS type URL: ${String(typeUrl)}`);
}

/**
 * The `TypeUrl` constant equal to `url` (undefined if it is not an ADS type). Maps keyed by type
 * URL are keyed by these constants, so lookups on the push path compare one pointer, not the
 * characters of a type URL decoded from a request.
 */
export function xdsTypeUrl(url: string): XdsTypeUrl | undefined {
  return canonicalTypeUrls.get(url);
}

const typeUrlBytes = allTypeUrls.map((url) => ({ url, bytes: Buffer.from(url) }));

/**
 * `xdsTypeUrl` of the UTF-8 bytes `buf[start, end)`, recognised without decoding them into a
 * string.
 */
export function xdsTypeUrlAt(buf: Buffer, start: number, end: number): XdsTypeUrl | undefined {
  for (const { url, bytes } of typeUrlBytes) {
    if (bytes.length === end - start && buf.compare(bytes, 0, bytes.length, start, end) === 0)
      return url;
  }
  return undefined;
}

/**
 * SotW: LDS and CDS responses carry the complete state; an omitted name is a removal. EDS, RDS and
 * SDS responses carry only the named resources they contain.
 */
export function isFullStateType(url: XdsTypeUrl): boolean {
  return url === TypeUrl.listener || url === TypeUrl.cluster;
}

export type PushPhase = 'upsert' | 'remove';

export interface PushStep {
  readonly typeUrl: XdsTypeUrl;
  /** The type's position in `allTypeUrls` (sessions and views index their per-type state by it). */
  readonly index: number;
  readonly phase: PushPhase;
  /**
   * Bits (1 << index) of earlier types whose outstanding ACK this step does not wait for; every
   * other earlier type awaiting its ACK holds the step back.
   */
  readonly notBehind: number;
}

/**
 * Make-before-break: secrets, then clusters, then their endpoints, then listeners that use them,
 * then routes; removals last, each after whatever referenced it is gone. A step waits for the ACKs
 * of the earlier ones, except that endpoints go while CDS awaits its ACK: once initialized, Envoy
 * keeps CDS paused, and so holds back the CDS ACK, for as long as any cluster is warming
 * (ClusterManagerImpl::updateClusterCounts), and a new EDS cluster warms until its endpoints come.
 * Waiting for that ACK deadlocked until Envoy's initial_fetch_timeout (15 s) warmed the cluster
 * with no endpoints. Envoy applies an ADS stream's responses in order, so endpoints sent right
 * behind the clusters still reach the clusters that response created.
 */
export const pushOrder: readonly PushStep[] = (
  [
    { typeUrl: TypeUrl.secret, phase: 'upsert' },
    { typeUrl: TypeUrl.cluster, phase: 'upsert' },
    { typeUrl: TypeUrl.endpoint, phase: 'upsert', notBehind: [TypeUrl.cluster] },
    { typeUrl: TypeUrl.listener, phase: 'upsert' },
    { typeUrl: TypeUrl.route, phase: 'upsert' },
    { typeUrl: TypeUrl.listener, phase: 'remove' },
    { typeUrl: TypeUrl.route, phase: 'remove' },
    { typeUrl: TypeUrl.endpoint, phase: 'remove' },
    { typeUrl: TypeUrl.cluster, phase: 'remove' },
    { typeUrl: TypeUrl.secret, phase: 'remove' },
  ] as const
).map((s: { typeUrl: XdsTypeUrl; phase: PushPhase; notBehind?: readonly XdsTypeUrl[] }) => ({
  typeUrl: s.typeUrl,
  phase: s.phase,
  index: typeIndex(s.typeUrl),
  notBehind: (s.notBehind ?? []).reduce((bits, t) => bits | (1 << typeIndex(t)), 0),
}));

/**
 * Resource types by the names `istioctl proxy-config` uses: the `:type` of `GET
 * /v1/xds/proxies/:id/config/:type` and of `isthmus proxy-config` (both take xDS short names too).
 */
export const configTypes = {
  clusters: TypeUrl.cluster,
  listeners: TypeUrl.listener,
  endpoints: TypeUrl.endpoint,
  routes: TypeUrl.route,
  secrets: TypeUrl.secret,
} as const satisfies Record<string, XdsTypeUrl>;

export type ConfigType = keyof typeof configTypes;

const aliases: Readonly<Record<string, ConfigType>> = {
  cds: 'clusters',
  lds: 'listeners',
  eds: 'endpoints',
  rds: 'routes',
  sds: 'secrets',
};

/**
 * A config type by its name or its xDS short name (`CDS`, `lds`, …; troubleshoot hints use those).
 */
export function configTypeOf(name: string): ConfigType | undefined {
  const lower = name.toLowerCase();
  return Object.hasOwn(configTypes, lower) ? (lower as ConfigType) : aliases[lower];
}
