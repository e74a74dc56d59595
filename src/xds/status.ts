import { entriesOf } from './cache/proxy-view.js';
import type { StreamStatus, TypeStatus } from './ads/stream-status.js';
import { allTypeUrls, shortName, TypeUrl, type XdsTypeUrl } from './types.js';
import { contentVersion, type CacheEntry } from './cache/entry.js';

/** CSDS ConfigStatus names: SYNCED, NOT_SENT, STALE, ERROR (the NACK detail is kept). */
export type ResourceSyncStatus = 'SYNCED' | 'NOT_SENT' | 'STALE' | 'ERROR';

export interface ResourceStatus {
  readonly typeUrl: XdsTypeUrl;
  readonly name: string;
  /** The version the server wants the proxy to have ('' when the resource was removed). */
  readonly version: string;
  /** The version the proxy last ACKed ('' if none). */
  readonly ackedVersion: string;
  readonly status: ResourceSyncStatus;
  readonly error?:
    | { readonly message: string; readonly version: string; readonly at: Date }
    | undefined;
  readonly entry?: CacheEntry | undefined;
}

const severity: Record<ResourceSyncStatus, number> = { SYNCED: 0, NOT_SENT: 1, STALE: 2, ERROR: 3 };

/**
 * Whether the proxy asks for a resource: a wildcard or by-name subscription, or the resource was
 * sent. Envoy always asks for clusters and listeners, so those count before its first request;
 * endpoints, secrets and routes only once a cluster or listener names them. A resource nobody
 * asked for is never sent, so it is not "NOT_SENT" (CSDS: requested but not yet sent).
 */
function requested(ts: TypeStatus | undefined, typeUrl: XdsTypeUrl, name: string): boolean {
  if (!ts?.requested) return typeUrl === TypeUrl.cluster || typeUrl === TypeUrl.listener;
  return ts.wildcard || ts.subscribed.has(name) || ts.sent.has(name) || ts.acked.has(name);
}

/** Every resource the proxy asks for or still holds, with its sync status, sorted. */
export function resourceStatuses(session: StreamStatus): ResourceStatus[] {
  const out: ResourceStatus[] = [];
  const view = session.view;
  for (const typeUrl of allTypeUrls) {
    const ts = session.types.get(typeUrl);
    const entries = entriesOf(view, typeUrl);
    const names = new Set<string>([...entries.keys()].filter((n) => requested(ts, typeUrl, n)));
    for (const n of ts?.acked.keys() ?? []) names.add(n);
    for (const name of [...names].sort()) {
      const entry = entries.get(name);
      const acked = ts?.acked.get(name) ?? '';
      const nack = ts?.nacked.get(name);
      let status: ResourceSyncStatus;
      if (nack && entry && nack.version === entry.version) status = 'ERROR';
      else if (entry && acked === entry.version) status = 'SYNCED';
      else if (entry && ts?.sent.get(name) !== entry.version) status = 'NOT_SENT';
      else status = 'STALE';
      out.push({
        typeUrl,
        name,
        version: entry?.version ?? '',
        ackedVersion: acked,
        status,
        error: nack ? { message: nack.message, version: nack.version, at: nack.at } : undefined,
        entry,
      });
    }
  }
  return out;
}

export interface TypeSummary {
  readonly status: ResourceSyncStatus | 'NONE';
  readonly resources: number;
  readonly synced: number;
  /**
   * The content version the proxy should hold for the type ('' when it should hold none): see
   * typeVersion.
   */
  readonly version: string;
  readonly lastNack?: { readonly message: string; readonly at: string } | undefined;
}

export interface ProxyStatusJson {
  readonly ID: string;
  readonly Cluster: string;
  readonly API: string;
  readonly ConnectedAt: string;
  readonly ViewRevision: number;
  /**
   * Content version of the whole config the proxy should hold (a hash of the per-type versions).
   */
  readonly Version: string;
  readonly Types: Readonly<Record<string, TypeSummary>>;
  /**
   * The newest NACK on this stream, of any type (it stays after a later ACK, like Envoy's
   * last_update_attempt).
   */
  readonly LastNack?:
    | { readonly Type: string; readonly Message: string; readonly At: string }
    | undefined;
  readonly Resources: readonly {
    Type: string;
    Name: string;
    Version: string;
    AckedVersion: string;
    Status: ResourceSyncStatus;
    Error?: string;
  }[];
}

/** The JSON proxy summary of `GET /v1/xds/proxies` (the same facts as CSDS). */
export function proxyStatusJson(session: StreamStatus): ProxyStatusJson {
  const statuses = resourceStatuses(session);
  const types: Record<string, TypeSummary> = {};
  for (const typeUrl of allTypeUrls) {
    const mine = statuses.filter((s) => s.typeUrl === typeUrl);
    const worst = mine.reduce<ResourceSyncStatus | 'NONE'>(
      (acc, s) => (acc === 'NONE' || severity[s.status] > severity[acc] ? s.status : acc),
      'NONE',
    );
    const lastNack = session.types.get(typeUrl)?.lastNack;
    types[shortName[typeUrl]] = {
      status: worst,
      resources: mine.length,
      synced: mine.filter((s) => s.status === 'SYNCED').length,
      version: typeVersion(entriesOf(session.view, typeUrl)),
      lastNack: lastNack ? { message: lastNack.message, at: lastNack.at.toISOString() } : undefined,
    };
  }
  const newest = newestNack(session);
  return {
    ID: session.nodeId ?? '',
    Cluster: session.node?.cluster ?? '',
    API: session.api,
    ConnectedAt: session.connectedAt.toISOString(),
    ViewRevision: session.view?.revision ?? 0,
    Version: versionOf(allTypeUrls.map((t) => `${shortName[t]}\0${types[shortName[t]]!.version}`)),
    Types: types,
    ...(newest ? { LastNack: newest } : {}),
    Resources: statuses.map((s) => ({
      Type: shortName[s.typeUrl],
      Name: s.name,
      Version: s.version,
      AckedVersion: s.ackedVersion,
      Status: s.status,
      ...(s.error ? { Error: s.error.message } : {}),
    })),
  };
}

/**
 * The version of one type's content: a content hash over the sorted `name` + resource version
 * pairs the proxy should hold ('' for none). Like resource versions it depends on content only, so
 * it is equal on every replica and restart, and two proxies with equal versions hold equal config.
 */
export function typeVersion(entries: ReadonlyMap<string, CacheEntry>): string {
  if (entries.size === 0) return '';
  return versionOf([...entries.values()].map((e) => `${e.name}\0${e.version}`).sort());
}

function versionOf(lines: readonly string[]): string {
  return contentVersion(Buffer.from(lines.join('\n')));
}

function newestNack(session: StreamStatus): ProxyStatusJson['LastNack'] {
  let newest: { typeUrl: XdsTypeUrl; message: string; at: Date } | undefined;
  for (const [typeUrl, ts] of session.types) {
    const n = ts.lastNack;
    if (n && (!newest || n.at.getTime() >= newest.at.getTime()))
      newest = { typeUrl, message: n.message, at: n.at };
  }
  return newest
    ? { Type: shortName[newest.typeUrl], Message: newest.message, At: newest.at.toISOString() }
    : undefined;
}

/** Each proxy's newest admitted stream (a proxy may briefly hold two while it reconnects). */
export function newestStreams(sessions: Iterable<StreamStatus>): Map<string, StreamStatus> {
  const newest = new Map<string, StreamStatus>();
  for (const s of sessions) {
    if (!s.nodeId) continue;
    const prev = newest.get(s.nodeId);
    if (
      !prev ||
      prev.connectedAt.getTime() < s.connectedAt.getTime() ||
      (prev.connectedAt.getTime() === s.connectedAt.getTime() && prev.id < s.id)
    )
      newest.set(s.nodeId, s);
  }
  return newest;
}
