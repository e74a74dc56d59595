import type * as grpc from '@grpc/grpc-js';
import {
  ClientStatusDiscoveryServiceService,
  type ClientStatusDiscoveryServiceServer,
  type ClientStatusRequest,
  type ClientStatusResponse,
  type ClientConfig,
  ConfigStatus,
} from '../gen/envoy/service/status/v3/csds.js';
import { ClientResourceStatus } from '../gen/envoy/admin/v3/config_dump_shared.js';
import type { StringMatcher } from '../gen/envoy/type/matcher/v3/string.js';
import type { AdsSession } from './ads/session.js';
import { resourceStatuses, type ResourceSyncStatus } from './status.js';

export { ClientStatusDiscoveryServiceService };

const configStatus: Record<ResourceSyncStatus, ConfigStatus> = {
  SYNCED: ConfigStatus.SYNCED,
  NOT_SENT: ConfigStatus.NOT_SENT,
  STALE: ConfigStatus.STALE,
  ERROR: ConfigStatus.ERROR,
};

const clientStatus: Record<ResourceSyncStatus, ClientResourceStatus> = {
  SYNCED: ClientResourceStatus.ACKED,
  NOT_SENT: ClientResourceStatus.REQUESTED,
  STALE: ClientResourceStatus.REQUESTED,
  ERROR: ClientResourceStatus.NACKED,
};

export function matchString(m: StringMatcher | undefined, value: string): boolean {
  const p = m?.matchPattern;
  if (!p) return true;
  const v = m.ignoreCase ? value.toLowerCase() : value;
  const norm = (s: string) => (m.ignoreCase ? s.toLowerCase() : s);
  switch (p.$case) {
    case 'exact':
      return v === norm(p.value);
    case 'prefix':
      return v.startsWith(norm(p.value));
    case 'suffix':
      return v.endsWith(norm(p.value));
    case 'contains':
      return v.includes(norm(p.value));
    case 'safeRegex':
      return new RegExp(`^(?:${p.value.regex})$`).test(value);
    default:
      return false;
  }
}

function clientConfig(session: AdsSession, excludeContents: boolean): ClientConfig {
  return {
    node: session.node,
    xdsConfig: [],
    clientScope: '',
    genericXdsConfigs: resourceStatuses(session).map((s) => ({
      typeUrl: s.typeUrl,
      name: s.name,
      versionInfo: s.ackedVersion || s.version,
      xdsConfig:
        excludeContents || !s.entry ? undefined : { typeUrl: s.typeUrl, value: Buffer.from(s.entry.messageBytes) },
      lastUpdated: undefined,
      configStatus: configStatus[s.status],
      clientStatus: clientStatus[s.status],
      errorState: s.error
        ? { details: s.error.message, versionInfo: s.error.version, lastUpdateAttempt: s.error.at, failedConfiguration: undefined }
        : undefined,
      isStaticResource: false,
    })),
  };
}

/** CSDS over the connected proxies (one entry per proxy: its newest stream). */
export function buildClientStatus(sessions: () => Iterable<AdsSession>, req: ClientStatusRequest): ClientStatusResponse {
  const newest = new Map<string, AdsSession>();
  for (const s of sessions()) {
    if (!s.nodeId) continue;
    const prev = newest.get(s.nodeId);
    if (!prev || prev.connectedAt <= s.connectedAt) newest.set(s.nodeId, s);
  }
  const matches = (id: string) =>
    req.nodeMatchers.length === 0 || req.nodeMatchers.some((m) => matchString(m.nodeId, id));
  const config = [...newest.entries()]
    .filter(([id]) => matches(id))
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([, s]) => clientConfig(s, req.excludeResourceContents));
  return { config };
}

export function csdsService(sessions: () => Iterable<AdsSession>): ClientStatusDiscoveryServiceServer {
  return {
    fetchClientStatus(call: grpc.ServerUnaryCall<ClientStatusRequest, ClientStatusResponse>, callback) {
      callback(null, buildClientStatus(sessions, call.request));
    },
    streamClientStatus(call: grpc.ServerDuplexStream<ClientStatusRequest, ClientStatusResponse>) {
      call.on('data', (req: ClientStatusRequest) => call.write(buildClientStatus(sessions, req)));
      call.on('end', () => call.end());
      call.on('error', () => undefined);
    },
  };
}
