import { entriesOf } from './cache/proxy-view.js';
import type { AdsSession } from './ads/session.js';
import { allTypeUrls, shortName, type XdsTypeUrl } from './types.js';
import type { CacheEntry } from './cache/entry.js';

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
  readonly error?: { readonly message: string; readonly version: string; readonly at: Date } | undefined;
  readonly entry?: CacheEntry | undefined;
}

const severity: Record<ResourceSyncStatus, number> = { SYNCED: 0, NOT_SENT: 1, STALE: 2, ERROR: 3 };

/** Every resource the proxy should have or still holds, with its sync status, sorted. */
export function resourceStatuses(session: AdsSession): ResourceStatus[] {
  const out: ResourceStatus[] = [];
  const view = session.currentView();
  for (const typeUrl of allTypeUrls) {
    const ts = session.typeStates().get(typeUrl);
    const entries = entriesOf(view, typeUrl);
    const names = new Set<string>([...entries.keys()]);
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
  readonly lastNack?: { readonly message: string; readonly at: string } | undefined;
}

export interface ProxyStatusJson {
  readonly ID: string;
  readonly Cluster: string;
  readonly API: string;
  readonly ConnectedAt: string;
  readonly ViewRevision: number;
  readonly Types: Readonly<Record<string, TypeSummary>>;
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
export function proxyStatusJson(session: AdsSession): ProxyStatusJson {
  const statuses = resourceStatuses(session);
  const types: Record<string, TypeSummary> = {};
  for (const typeUrl of allTypeUrls) {
    const mine = statuses.filter((s) => s.typeUrl === typeUrl);
    const worst = mine.reduce<ResourceSyncStatus | 'NONE'>(
      (acc, s) => (acc === 'NONE' || severity[s.status] > severity[acc] ? s.status : acc),
      'NONE',
    );
    const lastNack = session.typeStates().get(typeUrl)?.lastNack;
    types[shortName[typeUrl]] = {
      status: worst,
      resources: mine.length,
      synced: mine.filter((s) => s.status === 'SYNCED').length,
      lastNack: lastNack ? { message: lastNack.message, at: lastNack.at.toISOString() } : undefined,
    };
  }
  return {
    ID: session.nodeId ?? '',
    Cluster: session.node?.cluster ?? '',
    API: session.api,
    ConnectedAt: session.connectedAt.toISOString(),
    ViewRevision: session.currentView()?.revision ?? 0,
    Types: types,
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
