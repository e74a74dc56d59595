import * as grpc from '@grpc/grpc-js';
import {
  PeeringServiceClient,
  type ReplicationMessage,
} from '../../gen/isthmus/peering/v1/peering.js';
import { silentLogger, type Logger } from '../../log.js';
import { backoffDelay, type BackoffOptions } from './backoff.js';
import { guardObserver } from './observer.js';
import type { ResourceUrl } from './resources.js';
import {
  PeerStreamSession,
  type SessionEnd,
  type SessionStats,
  type StreamTransport,
} from './session.js';
import { dialerChannelOptions, dialerCredentials, dialerMetadata } from './tls.js';
import {
  timingsOf,
  type ResourceSink,
  type ResourceSource,
  type StreamObserver,
  type StreamOpen,
  type StreamTimings,
  peeringLeaderHeader,
} from './types.js';

/** Where and how the dialer connects; `update` replaces any of it for the next connection. */
export interface DialTarget {
  /** The acceptor's peering addresses (`host:port`), tried in turn. */
  readonly addresses: readonly string[];
  /** `server.<dc>.peering.<td>` of the acceptor, required as a DNS SAN of its certificate. */
  readonly serverName: string;
  /** The acceptor's CA roots. */
  readonly caPems: readonly string[];
  /** The dialer's own certificate and key (chaining to the roots pinned at ExchangeSecret). */
  readonly certPem: string;
  readonly keyPem: string;
  readonly open: StreamOpen;
}

export interface DialOptions extends DialTarget, StreamTimings {
  /** The local name of the peering, for logs. */
  readonly peeringName: string;
  readonly source: ResourceSource;
  readonly sink: ResourceSink;
  readonly observer: StreamObserver;
  /** What the dialer subscribes to (default: `importsOf.dialer`). */
  readonly imports?: readonly ResourceUrl[];
  readonly backoff?: BackoffOptions;
  readonly logger?: Logger;
}

export interface StopOptions {
  /** Send Terminated first (the peering was deleted here). */
  readonly terminate?: boolean;
  /** Longest wait for the acceptor to close the stream before it is cancelled (ms, default 5 s). */
  readonly graceMs?: number;
}

/** Starts a dialer that keeps one replication stream open to the acceptor until stopped. */
export function dialStream(opts: DialOptions): StreamDialer {
  const dialer = new StreamDialer(opts);
  dialer.start();
  return dialer;
}

interface Connection {
  readonly client: grpc.Client;
  readonly call: grpc.ClientDuplexStream<ReplicationMessage, ReplicationMessage>;
  readonly session: PeerStreamSession;
  /** Resolves when the call has its final status. */
  readonly finished: Promise<void>;
}

/**
 * The dialer end (docs/architecture.md §6 "Stream"): connects over TLS, sends Open, runs a session,
 * and after any failure reconnects with jittered exponential backoff, trying the acceptor's
 * addresses in turn. A Terminated from the acceptor stops it for good.
 */
export class StreamDialer {
  private target: DialTarget;
  private connection: Connection | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  private addressIndex = 0;
  /** The peer's leader, as a server that is not told us (dialed next, once). */
  private redirectTo: string | undefined;
  private stopped = false;
  private stopping: Promise<void> | undefined;
  private readonly logger: Logger;
  private readonly observer: Required<StreamObserver>;

  constructor(private readonly opts: DialOptions) {
    this.target = pickTarget(opts);
    this.logger = opts.logger ?? silentLogger();
    this.observer = guardObserver(opts.observer, this.logger, { peering: opts.peeringName });
  }

  start(): void {
    if (!this.connection && !this.retryTimer && !this.stopped) this.connect();
  }

  get isActive(): boolean {
    return this.connection?.session.isActive ?? false;
  }

  /** False once stopped, or after the acceptor terminated the peering. */
  get running(): boolean {
    return !this.stopped;
  }

  stats(): SessionStats | undefined {
    return this.connection?.session.stats();
  }

  /** New addresses, roots, certificate or secret, used from the next connection on. */
  update(changes: Partial<DialTarget>): void {
    this.target = { ...this.target, ...changes };
  }

  stop(opts: StopOptions = {}): Promise<void> {
    this.stopping ??= this.shutdown(opts);
    return this.stopping;
  }

  private async shutdown(opts: StopOptions): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    let conn = this.connection;
    if (!conn && opts.terminate) {
      // Between attempts: one best-effort stream, just to deliver Terminated.
      try {
        conn = this.open(this.nextClient());
      } catch {
        return;
      }
    }
    if (!conn) return;
    if (opts.terminate) conn.session.terminate();
    else conn.session.stop();
    await conn.session.ended;
    await this.release(conn, opts.graceMs ?? 5_000);
  }

  private connect(): void {
    this.retryTimer = undefined;
    if (this.stopped) return;
    try {
      this.connection = this.open(this.nextClient());
    } catch (err) {
      this.observer.onFailing((err as Error).message);
      this.retry(false);
    }
  }

  /** A client for the current address, with the current roots and certificate. */
  private nextClient(): grpc.Client {
    const { addresses, serverName } = this.target;
    const address = this.redirectTo ?? addresses[this.addressIndex % Math.max(1, addresses.length)];
    this.redirectTo = undefined;
    if (!address) throw new Error('the peering has no server addresses to dial');
    this.logger.debug({ peering: this.opts.peeringName, address }, 'dialing peering stream');
    return new PeeringServiceClient(
      address,
      dialerCredentials(this.target),
      dialerChannelOptions(serverName),
    );
  }

  private open(client: grpc.Client): Connection {
    const call = (client as InstanceType<typeof PeeringServiceClient>).streamResources(
      dialerMetadata(this.target.certPem),
    );
    const session = new PeerStreamSession(
      {
        ...timingsOf(this.opts),
        role: 'dialer',
        peeringName: this.opts.peeringName,
        source: this.opts.source,
        sink: this.opts.sink,
        imports: this.opts.imports,
        open: this.target.open,
        // The session guards the observer itself.
        observer: this.opts.observer,
        logger: this.logger,
      },
      clientTransport(call),
    );
    const finished = new Promise<void>((resolve) => call.on('status', () => resolve()));
    call.on('data', (msg: ReplicationMessage) => session.receive(msg));
    call.on('error', (err: grpc.ServiceError) => {
      const leader = err.metadata?.get(peeringLeaderHeader)[0];
      if (typeof leader === 'string' && leader !== '') this.redirectTo = leader;
      session.transportClosed(describeStatus(err.code, err.details));
    });
    call.on('status', (s: grpc.StatusObject) => {
      if (s.code === grpc.status.OK) session.transportClosed('the acceptor ended the stream');
    });
    const conn = { client, call, session, finished };
    void session.ended.then((end) => this.afterSession(conn, end));
    session.start();
    return conn;
  }

  private async afterSession(conn: Connection, end: SessionEnd): Promise<void> {
    if (this.stopped) return; // shutdown() releases the connection itself
    this.connection = undefined;
    void this.release(conn, end.kind === 'failed' ? 0 : 5_000);
    if (end.kind === 'terminated') {
      this.stopped = true;
      this.logger.info(
        { peering: this.opts.peeringName },
        'the acceptor terminated the peering; not reconnecting',
      );
      return;
    }
    this.retry(conn.session.wasActive);
  }

  /** Schedules the next connection: the backoff restarts after a stream that was active. */
  private retry(afterActive: boolean): void {
    if (this.stopped) return;
    if (afterActive) this.failures = 0;
    else if (this.redirectTo === undefined) this.addressIndex++;
    const delay = backoffDelay(this.failures++, this.opts.backoff);
    this.logger.debug(
      { peering: this.opts.peeringName, attempt: this.failures, delayMs: delay },
      'peering stream reconnect scheduled',
    );
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  /** Waits up to `graceMs` for the call to finish (a half-close flushed), then drops it. */
  private async release(conn: Connection, graceMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    if (graceMs > 0) {
      await Promise.race([
        conn.finished,
        new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs))),
      ]);
      clearTimeout(timer);
    }
    conn.call.cancel();
    conn.client.close();
  }
}

function pickTarget(opts: DialTarget): DialTarget {
  const { addresses, serverName, caPems, certPem, keyPem, open } = opts;
  return { addresses, serverName, caPems, certPem, keyPem, open };
}

function clientTransport(
  call: grpc.ClientDuplexStream<ReplicationMessage, ReplicationMessage>,
): StreamTransport {
  let ended = false;
  return {
    write: (msg) => {
      if (!ended) call.write(msg);
    },
    end: (error) => {
      if (ended) return;
      ended = true;
      if (error) call.cancel();
      else call.end();
    },
  };
}

/** `UNAVAILABLE: <details>`, without grpc-js's empty "Resolution note" suffix. */
function describeStatus(code: grpc.status, details: string): string {
  return `${grpc.status[code] ?? code}: ${details.replace(/\.? Resolution note: $/, '')}`;
}
