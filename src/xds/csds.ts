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
import type { NodeMatcher } from '../gen/envoy/type/matcher/v3/node.js';
import { Secret } from '../gen/envoy/extensions/transport_sockets/tls/v3/secret.js';
import { type ApiScope, formatApiScope } from '../acl/index.js';
import { presentedToken, tokensEqual } from '../acl/http-token.js';
import { IsthmusError } from '../errors.js';
import { grpcStatusOf } from '../grpc-status.js';
import type { Logger } from '../log.js';
import type { StreamStatus } from './ads/stream-status.js';
import type { CacheEntry } from './cache/entry.js';
import { containsPrivateKey, redactSecretMessage } from './redact.js';
import { newestStreams, resourceStatuses, type ResourceSyncStatus } from './status.js';
import { TypeUrl } from './types.js';

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

/**
 * Whether `value` matches. Only the linear-time patterns: a client-supplied `safe_regex` would run
 * on a backtracking RegExp (Envoy uses RE2), so validateNodeMatchers refuses it before this runs.
 */
function matchString(m: StringMatcher | undefined, value: string): boolean {
  const p = m?.matchPattern;
  if (!p) return true;
  const norm = (s: string) => (m.ignoreCase ? s.toLowerCase() : s);
  const v = norm(value);
  switch (p.$case) {
    case 'exact':
      return v === norm(p.value);
    case 'prefix':
      return v.startsWith(norm(p.value));
    case 'suffix':
      return v.endsWith(norm(p.value));
    case 'contains':
      return v.includes(norm(p.value));
    default:
      return false;
  }
}

const supported = 'use exact, prefix, suffix or contains';

/** Every node matcher CSDS cannot evaluate, as `node_matchers[i].<field> ...` messages. */
export function validateNodeMatchers(matchers: readonly NodeMatcher[]): string[] {
  const errors: string[] = [];
  matchers.forEach((m, i) => {
    const p = m.nodeId?.matchPattern;
    if (p?.$case === 'safeRegex')
      errors.push(`node_matchers[${i}].node_id.safe_regex is not supported; ${supported}`);
    else if (p?.$case === 'custom')
      errors.push(`node_matchers[${i}].node_id.custom is not supported; ${supported}`);
    // Ignoring them would match every proxy, the opposite of what was asked.
    if (m.nodeMetadatas.length > 0)
      errors.push(`node_matchers[${i}].node_metadatas is not supported; match on node_id`);
  });
  return errors;
}

/**
 * The resource bytes CSDS may show, per cache entry, for one response: SDS Secrets re-encoded with
 * their keys "[redacted]" (redact.ts). Bytes that still hold a PEM private key are withheld
 * (undefined): keys only travel in Secrets, so that is a last line of defence. Proxies share
 * entries, so each is redacted and checked once per response, not once per proxy.
 */
class ShownContents {
  private readonly shown = new Map<CacheEntry, Buffer | null>();

  of(entry: CacheEntry): Buffer | undefined {
    let shown = this.shown.get(entry);
    if (shown === undefined) {
      const bytes =
        entry.typeUrl === TypeUrl.secret
          ? Secret.encode(redactSecretMessage(Secret.decode(entry.messageBytes))).finish()
          : entry.messageBytes;
      // A view, not a copy: a response to many proxies must not copy what they share.
      shown = containsPrivateKey(bytes)
        ? null
        : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      this.shown.set(entry, shown);
    }
    return shown ?? undefined;
  }
}

function clientConfig(session: StreamStatus, shown: ShownContents | undefined): ClientConfig {
  return {
    node: session.node,
    xdsConfig: [],
    clientScope: '',
    genericXdsConfigs: resourceStatuses(session).map((s) => ({
      typeUrl: s.typeUrl,
      name: s.name,
      versionInfo: s.ackedVersion || s.version,
      xdsConfig: !shown || !s.entry ? undefined : anyOf(s.typeUrl, shown.of(s.entry)),
      lastUpdated: undefined,
      configStatus: configStatus[s.status],
      clientStatus: clientStatus[s.status],
      errorState: s.error
        ? {
            details: s.error.message,
            versionInfo: s.error.version,
            lastUpdateAttempt: s.error.at,
            failedConfiguration: undefined,
          }
        : undefined,
      isStaticResource: false,
    })),
  };
}

function anyOf(typeUrl: string, value: Buffer | undefined) {
  return value === undefined ? undefined : { typeUrl, value };
}

/**
 * CSDS over the connected proxies (one entry per proxy: its newest stream). Throws IsthmusError
 * (invalid_argument) for a node matcher it cannot evaluate.
 */
export function buildClientStatus(
  sessions: () => Iterable<StreamStatus>,
  req: ClientStatusRequest,
  visible: (nodeId: string) => boolean = () => true,
): ClientStatusResponse {
  const invalid = validateNodeMatchers(req.nodeMatchers);
  if (invalid.length > 0)
    throw new IsthmusError('invalid_argument', invalid.join('; '), 'node_matchers');
  const newest = newestStreams(sessions());
  const matches = (id: string) =>
    req.nodeMatchers.length === 0 || req.nodeMatchers.some((m) => matchString(m.nodeId, id));
  const shown = req.excludeResourceContents ? undefined : new ShownContents();
  const config = [...newest.entries()]
    .filter(([id]) => visible(id) && matches(id))
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([, s]) => clientConfig(s, shown));
  return { config };
}

export interface CsdsOptions {
  readonly logger: Logger;
  /**
   * The HTTP API token (`--http-token`). When set, every call must carry it as gRPC metadata
   * `authorization: Bearer <token>` or `x-isthmus-token: <token>`, as xDS-status reads over HTTP
   * do (api/auth.ts); without it CSDS is open, like `GET /v1/xds/proxies`.
   */
  readonly token?: string | undefined;
  /**
   * The scope of an HTTP API token (src/acl/api-tokens.ts), accepted besides `token`: `operator`
   * and `read` see every proxy, `service:<name>` the proxies `proxyOwner` says are that service's,
   * `peering` none (refused).
   */
  readonly scopeOf?: ((presented: string) => ApiScope | undefined) | undefined;
  /** The service a proxy belongs to (its sidecar's service), for `service:<name>` tokens. */
  readonly proxyOwner?: ((nodeId: string) => string | undefined) | undefined;
  /**
   * The other servers of the cluster, asked for the proxies connected to them (docs/architecture.md
   * §1 "Membership") with the caller's credentials; a server that does not answer is left out.
   */
  readonly remote?: CsdsRemote | undefined;
}

/** Other servers' answers to one CSDS request: the caller's token headers, and the request. */
export type CsdsRemote = (
  credentials: Readonly<Record<string, string>>,
  req: ClientStatusRequest,
) => Promise<readonly ClientConfig[]>;

function credentialsOf(metadata: grpc.Metadata): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of ['authorization', 'x-isthmus-token']) {
    const v = metadata.get(key)[0];
    if (typeof v === 'string') out[key] = v;
  }
  return out;
}

/** This server's answer plus the other servers', one entry per proxy, sorted by node id. */
async function clusterStatus(
  local: ClientStatusResponse,
  metadata: grpc.Metadata,
  req: ClientStatusRequest,
  opts: CsdsOptions,
): Promise<ClientStatusResponse> {
  if (!opts.remote) return local;
  const remote = await opts.remote(credentialsOf(metadata), req).catch((err: unknown) => {
    opts.logger.debug({ error: (err as Error).message }, 'csds: other servers not asked');
    return [];
  });
  if (remote.length === 0) return local;
  const id = (c: ClientConfig) => c.node?.id ?? '';
  const config = [...local.config, ...remote].sort((a, b) => (id(a) < id(b) ? -1 : 1));
  return { config };
}

/** Which proxies a caller may see. */
type Visible = (nodeId: string) => boolean;
const everyProxy: Visible = () => true;

const hint =
  'send it as gRPC metadata "authorization: Bearer <token>" or "x-isthmus-token: <token>"';

/**
 * The proxies the caller may see: every one without `--http-token`, or with it or an `operator` or
 * `read` API token; a `service:<name>` token's own. Throws permission_denied otherwise, as the HTTP
 * API's xDS-status reads do (src/api/route-access.ts).
 */
function callerSees(metadata: grpc.Metadata, opts: CsdsOptions): Visible {
  const token = opts.token;
  if (!token) return everyProxy;
  const header = (key: string) => {
    const v = metadata.get(key)[0];
    return typeof v === 'string' ? v : undefined;
  };
  const presented = presentedToken({
    headers: {
      authorization: header('authorization'),
      'x-isthmus-token': header('x-isthmus-token'),
    },
  });
  if (presented !== undefined && tokensEqual(presented, token)) return everyProxy;
  const scope = presented === undefined ? undefined : opts.scopeOf?.(presented);
  if (scope?.kind === 'operator' || scope?.kind === 'read') return everyProxy;
  if (scope?.kind === 'service') {
    const owner = opts.proxyOwner;
    return (nodeId) => owner?.(nodeId) === scope.service;
  }
  if (scope)
    throw new IsthmusError(
      'permission_denied',
      `Permission denied: CSDS needs a token with scope read or operator (or service:<name> for that service's proxies); this token has scope ${formatApiScope(scope)}`,
    );
  const why =
    presented === undefined ? 'CSDS needs the HTTP API token' : 'the HTTP API token is not valid';
  throw new IsthmusError('permission_denied', `Permission denied: ${why}; ${hint}`);
}

export function csdsService(
  sessions: () => Iterable<StreamStatus>,
  opts: CsdsOptions,
): ClientStatusDiscoveryServiceServer {
  const refused = (call: { getPeer(): string }, e: unknown) => {
    const err = IsthmusError.from(e);
    opts.logger.info(
      { peer: call.getPeer(), code: err.code, error: err.message },
      'csds call refused',
    );
    return { code: grpcStatusOf(err), details: err.message };
  };
  return {
    fetchClientStatus(
      call: grpc.ServerUnaryCall<ClientStatusRequest, ClientStatusResponse>,
      callback,
    ) {
      try {
        const visible = callerSees(call.metadata, opts);
        const local = buildClientStatus(sessions, call.request, visible);
        void clusterStatus(local, call.metadata, call.request, opts).then((all) =>
          callback(null, all),
        );
      } catch (e) {
        callback(refused(call, e));
      }
    },
    streamClientStatus(call: grpc.ServerDuplexStream<ClientStatusRequest, ClientStatusResponse>) {
      let ended = false;
      const fail = (e: unknown) => {
        ended = true;
        call.emit('error', refused(call, e));
      };
      call.on('error', () => undefined);
      let visible: Visible;
      try {
        visible = callerSees(call.metadata, opts);
      } catch (e) {
        fail(e);
        return;
      }
      // Answers go out in request order, each once the other servers answered.
      let chain: Promise<void> = Promise.resolve();
      call.on('data', (req: ClientStatusRequest) => {
        if (ended) return;
        try {
          const local = buildClientStatus(sessions, req, visible);
          chain = chain
            .then(() => clusterStatus(local, call.metadata, req, opts))
            .then((all) => {
              if (!ended) call.write(all);
            });
        } catch (e) {
          fail(e);
        }
      });
      call.on('end', () => {
        void chain.then(() => {
          if (!ended) call.end();
        });
      });
    },
  };
}
