import * as grpc from '@grpc/grpc-js';
import { AggregatedDiscoveryServiceService } from '../gen/envoy/service/discovery/v3/ads.js';
import {
  type DeltaDiscoveryRequest,
  DiscoveryRequest,
} from '../gen/envoy/service/discovery/v3/discovery.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { XdsCache } from './cache/xds-cache.js';
import type { AdsSession, AdsApi, SessionContext } from './ads/session.js';
import { FlushScheduler } from './ads/flush-scheduler.js';
import { PushCounters } from './ads/push-counters.js';
import type { StreamStatus } from './ads/stream-status.js';
import { SotwSession } from './ads/sotw-session.js';
import { DeltaSession } from './ads/delta-session.js';
import { decodeDeltaRequest } from './ads/delta-request.js';
import { decodeOrMalformed } from './ads/malformed-request.js';
import { IsthmusError } from '../errors.js';
import { grpcStatusOf } from '../grpc-status.js';
import { StreamSlots } from './stream-slots.js';
import { ClientStatusDiscoveryServiceService, type CsdsOptions, csdsService } from './csds.js';
import { proxyStatusJson, type ProxyStatusJson } from './status.js';
import type { XdsClientTls, XdsServerTls } from './tls.js';
import { TcpListeners } from './tcp-listeners.js';
import { parseHostPort } from '../config/host-port.js';

export interface XdsServerOptions {
  readonly logger: Logger;
  readonly metrics: Metrics;
  /**
   * The cache proxies' views are published to (the composition root shares it with the builders).
   */
  readonly cache?: XdsCache;
  /**
   * Admitted streams beyond this many get RESOURCE_EXHAUSTED (streams not yet admitted hold no
   * slot).
   */
  readonly maxStreams?: number;
  /** Streams one proxy token may hold open at once (default 8; see `authenticate`). */
  readonly maxStreamsPerToken?: number;
  /** Largest request message read (bytes, default `defaultMaxRequestBytes`). */
  readonly maxRequestBytes?: number;
  /** A stream with no valid first request within this long is closed (ms, default 10 s). */
  readonly admissionTimeoutMs?: number;
  /**
   * Checks a stream's metadata when it opens, before any message is read; throws IsthmusError
   * (unauthenticated) to refuse. Returns the token the per-token stream limit counts under.
   */
  readonly authenticate?: (metadata: grpc.Metadata) => string | undefined;
  /** Largest Delta response before it is split (bytes, default 4 MiB). */
  readonly maxResponseBytes?: number;
  /** Longest wait for endpoint subscriptions of new clusters before listeners are sent (ms). */
  readonly warmingTimeoutMs?: number;
  /** Checks a stream may act as `nodeId` (issue: xDS auth); throws IsthmusError to refuse. */
  readonly authorize?: SessionContext['authorize'];
  /**
   * The HTTP API token (`--http-token`): when set, CSDS calls must carry it or an API token with a
   * scope that reads proxies (see csds.ts).
   */
  readonly httpToken?: string | undefined;
  /** The scope of an API token (ApiTokens.scopeOf), and whose a proxy is, for CSDS (csds.ts). */
  readonly csdsScopeOf?: CsdsOptions['scopeOf'];
  readonly proxyOwner?: CsdsOptions['proxyOwner'];
  /** The other servers of the cluster, for CSDS answers that cover every proxy (csds.ts). */
  readonly csdsRemote?: CsdsOptions['remote'];
  /**
   * TLS of the port (docs/architecture.md §1, "The xDS port"). Absent: plaintext, which only
   * `--xds-plaintext` asks for, and tests where TLS is not the subject.
   */
  readonly tls?: XdsServerTls | undefined;
}

/**
 * Responses are assembled from cached bytes (see wire.ts), so the ADS service writes Buffers as-is
 * instead of re-encoding a DiscoveryResponse per proxy. Delta ACKs are read by a fast path.
 */
const passThrough = (value: Buffer): Buffer => value;
const adsServiceDefinition: grpc.ServiceDefinition = {
  streamAggregatedResources: {
    ...AggregatedDiscoveryServiceService.streamAggregatedResources,
    requestDeserialize: decodeOrMalformed((buf: Buffer) => DiscoveryRequest.decode(buf)),
    responseSerialize: passThrough,
  },
  deltaAggregatedResources: {
    ...AggregatedDiscoveryServiceService.deltaAggregatedResources,
    requestDeserialize: decodeOrMalformed(decodeDeltaRequest),
    responseSerialize: passThrough,
  },
};

/**
 * The largest request message the xDS server reads by default (`--xds-max-request-bytes`). A
 * DiscoveryRequest is small: the largest Envoy sends is a Delta reconnect naming every resource it
 * holds with its version: 2.3 MB for 10,000 resources of 100-byte names (docs/architecture.md
 * §2, "Limits of the xDS port"). gRPC's own default, and Istio's, is the same 4 MiB. Responses
 * are bounded by the clients' receive limits, not this one.
 */
export const defaultMaxRequestBytes = 4 * 1024 * 1024;

/** The xDS server's gRPC channel options (the fan-out benchmark's raw reference uses them too). */
export const xdsChannelOptions: grpc.ServerOptions = {
  'grpc.max_receive_message_length': defaultMaxRequestBytes,
  'grpc.max_send_message_length': -1,
  'grpc.keepalive_time_ms': 30_000,
  'grpc.keepalive_timeout_ms': 10_000,
  'grpc.http2.min_ping_interval_without_data_ms': 5_000,
  'grpc.keepalive_permit_without_calls': 1,
  // Channelz is not served; its per-message bookkeeping is pure overhead at fan-out.
  'grpc.enable_channelz': 0,
};

export class XdsServer {
  private readonly server: grpc.Server;
  private readonly sessions = new Set<AdsSession>();
  private readonly slots: StreamSlots<AdsSession>;
  private readonly ctx: SessionContext;
  private listeners: TcpListeners | undefined;
  private readonly stateListeners = new Set<() => void>();
  readonly cache: XdsCache;

  constructor(private readonly opts: XdsServerOptions) {
    this.server = new grpc.Server({
      ...xdsChannelOptions,
      'grpc.max_receive_message_length': opts.maxRequestBytes ?? defaultMaxRequestBytes,
    });
    this.slots = new StreamSlots(opts.maxStreams ?? 10_000, opts.maxStreamsPerToken ?? 8);
    this.cache = opts.cache ?? new XdsCache(opts.metrics);
    this.ctx = {
      cache: this.cache,
      metrics: opts.metrics,
      logger: opts.logger,
      maxResponseBytes: opts.maxResponseBytes ?? 4 * 1024 * 1024,
      warmingTimeoutMs: opts.warmingTimeoutMs ?? 1_000,
      admissionTimeoutMs: opts.admissionTimeoutMs ?? 10_000,
      scheduler: new FlushScheduler(),
      pushes: new PushCounters(opts.metrics),
      authorize: opts.authorize ?? (() => undefined),
      claimSlot: (s) => {
        this.slots.claim(s);
        opts.metrics.xdsStreams.inc({ api: s.api });
      },
      onReady: (s) => {
        opts.logger.debug({ nodeId: s.nodeId, api: s.api, stream: s.id }, 'xds stream opened');
        this.proxyStateChanged();
      },
      onClose: (s) => this.forget(s),
      onStateChange: () => this.proxyStateChanged(),
    };
    this.server.addService(adsServiceDefinition, {
      streamAggregatedResources: (call: grpc.ServerDuplexStream<DiscoveryRequest, Buffer>) =>
        this.accept('sotw', call, () => new SotwSession('sotw', this.ctx, call)),
      deltaAggregatedResources: (call: grpc.ServerDuplexStream<DeltaDiscoveryRequest, Buffer>) =>
        this.accept('delta', call, () => new DeltaSession('delta', this.ctx, call)),
    });
    this.server.addService(
      ClientStatusDiscoveryServiceService,
      csdsService(() => this.streamStatuses(), {
        logger: opts.logger,
        token: opts.httpToken,
        scopeOf: opts.csdsScopeOf,
        proxyOwner: opts.proxyOwner,
        remote: opts.csdsRemote,
      }),
    );
  }

  /**
   * A stream opens: its token is checked now, before a message is read (the session's data
   * listener starts the reading), so a client without one costs a header block, never a message
   * body (issue 18). A stream takes a slot of `maxStreams` only once its first request admits it.
   */
  private accept(
    api: AdsApi,
    call: grpc.ServerDuplexStream<unknown, Buffer>,
    create: () => AdsSession,
  ): void {
    let token: string | undefined;
    try {
      token = this.opts.authenticate?.(call.metadata);
      this.slots.open(token);
    } catch (err) {
      this.refuse(api, call, IsthmusError.from(err));
      return;
    }
    const session = create();
    this.sessions.add(session);
    this.slots.opened(session, token);
  }

  private refuse(
    api: AdsApi,
    call: grpc.ServerDuplexStream<unknown, Buffer>,
    err: IsthmusError,
  ): void {
    const reason = err.code === 'resource_exhausted' ? 'limit' : 'unauthenticated';
    this.opts.metrics.xdsStreamsRefused.inc({ reason });
    this.opts.logger.info({ api, code: err.code, error: err.message }, 'xds stream refused');
    call.emit('error', { code: grpcStatusOf(err), details: err.message });
  }

  private forget(session: AdsSession): void {
    if (!this.sessions.delete(session)) return;
    if (this.slots.release(session)) this.opts.metrics.xdsStreams.dec({ api: session.api });
    if (session.nodeId !== undefined) this.proxyStateChanged();
  }

  /**
   * Calls `listener` whenever what `proxyStatus()` reports may have changed: a stream admitted or
   * closed, a request (ACK, NACK, subscription), a response written, a view published. It runs on
   * the push path, once per stream and event (thousands per publish): it must only take note and
   * coalesce (the web UI's change stream does). Returns the unsubscribe.
   */
  onProxyStateChange(listener: () => void): () => void {
    this.stateListeners.add(listener);
    return () => this.stateListeners.delete(listener);
  }

  private proxyStateChanged(): void {
    if (this.stateListeners.size === 0) return;
    for (const listener of this.stateListeners) listener();
  }

  /**
   * Binds `host:port` (port 0 picks a free one) and resolves with the bound port. The sockets are
   * ours, with a deep accept queue (see tcp-listeners.ts); gRPC runs over what they accept.
   */
  async listen(hostPort: string): Promise<number> {
    const addr = parseHostPort(hostPort);
    if (!addr) throw new Error(`xds listen address "${hostPort}" is not HOST:PORT`);
    const tls = this.opts.tls;
    const credentials = tls ? await tls.start() : grpc.ServerCredentials.createInsecure();
    const injector = this.server.createConnectionInjector(credentials);
    this.listeners = await TcpListeners.open(
      addr,
      (socket) => injector.injectConnection(socket),
      (err) => this.opts.logger.warn({ error: err.message }, 'xds port: accepting failed'),
    );
    const port = this.listeners.port;
    this.opts.logger.info(
      { addr: hostPort, port, tls: tls !== undefined, dnsSans: tls?.identity.dnsSans },
      'xds server listening',
    );
    return port;
  }

  /** What a client needs to verify this server; undefined when the port is plaintext. */
  clientTls(): XdsClientTls | undefined {
    return this.opts.tls?.clientTls();
  }

  get listening(): boolean {
    return this.listeners !== undefined;
  }

  /** Open ADS streams that completed admission. */
  private connectedSessions(): AdsSession[] {
    return [...this.sessions].filter((s) => s.nodeId !== undefined);
  }

  /** What status readers see of each open ADS stream that completed admission (copies). */
  streamStatuses(): StreamStatus[] {
    return this.connectedSessions().map((s) => s.status());
  }

  /** Open ADS streams, those still waiting for admission included. */
  get openCount(): number {
    return this.sessions.size;
  }

  /**
   * Open ADS streams that completed admission: those holding a slot (a count, not a scan: a
   * benchmark polls it while thousands of streams reconnect).
   */
  get connectedCount(): number {
    return this.slots.admittedCount;
  }

  /** Responses written and not yet ACKed or NACKed, over every stream and type. */
  get pendingResponses(): number {
    let n = 0;
    for (const s of this.sessions) n += s.pendingResponses;
    return n;
  }

  /**
   * Checks the open streams of `nodeId` again (a token was revoked): those no longer admitted end.
   */
  reauthorize(nodeId: string): void {
    for (const s of this.connectedSessions()) if (s.nodeId === nodeId) void s.reauthorize();
  }

  /** The per-proxy summary served as `GET /v1/xds/proxies` (same data as CSDS). */
  proxyStatus(): ProxyStatusJson[] {
    return this.streamStatuses()
      .map(proxyStatusJson)
      .sort((a, b) =>
        a.ID < b.ID ? -1 : a.ID > b.ID ? 1 : a.ConnectedAt < b.ConnectedAt ? -1 : 1,
      );
  }

  /**
   * Stops accepting streams (GOAWAY), ends open streams with UNAVAILABLE so proxies reconnect
   * (to another replica), and force-closes whatever is left after `graceMs`.
   */
  async shutdown(graceMs = 5_000): Promise<void> {
    this.opts.tls?.stop();
    if (this.listeners === undefined) return;
    this.listeners.close();
    this.listeners = undefined;
    const done = new Promise<void>((resolve) => this.server.tryShutdown(() => resolve()));
    for (const s of [...this.sessions]) s.end();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, graceMs);
    });
    await Promise.race([done, timeout]);
    clearTimeout(timer);
  }
}
