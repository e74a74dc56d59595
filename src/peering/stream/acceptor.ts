import type * as grpc from '@grpc/grpc-js';
import { status as GrpcStatus, Metadata } from '@grpc/grpc-js';
import type { ReplicationMessage } from '../../gen/isthmus/peering/v1/peering.js';
import { IsthmusError } from '../../errors.js';
import { grpcStatusOf } from '../../grpc-status.js';
import { silentLogger, type Logger } from '../../log.js';
import { payloadKind, terminatedMessage } from './messages.js';
import type { ResourceUrl } from './resources.js';
import { PeerStreamSession, type SessionStats, type StreamTransport } from './session.js';
import { peerCertificateOf, peerIntermediatesOf } from './tls.js';
import {
  defaultTimings,
  timingsOf,
  type ResourceSink,
  type ResourceSource,
  type StreamAuthority,
  type StreamObserver,
  type StreamOpen,
  type StreamTimings,
  peeringLeaderHeader,
} from './types.js';

export type StreamCall = grpc.ServerDuplexStream<ReplicationMessage, ReplicationMessage>;

/** A stream whose Open the authority accepted. The stream secret is not part of it. */
export interface AcceptedPeer {
  readonly peeringName: string;
  readonly peerId: string;
  readonly remote: StreamOpen['remote'];
}

/** What one peering exports and imports, and who watches its stream. */
export interface PeerBinding {
  readonly source: ResourceSource;
  readonly sink: ResourceSink;
  readonly observer: StreamObserver;
}

export interface AcceptorOptions extends StreamTimings {
  readonly authority: StreamAuthority;
  /** Called once per accepted stream, after the Open was verified and the stream won its slot. */
  bind(peer: AcceptedPeer): PeerBinding;
  /** What the acceptor subscribes to (default: `importsOf.acceptor`). */
  readonly imports?: readonly ResourceUrl[];
  readonly logger?: Logger;
  /**
   * Streams waiting for a verified Open at once (default 64); more are refused with
   * RESOURCE_EXHAUSTED. Each waits at most `openTimeoutMs`, so unauthenticated streams cannot pile
   * up, and a peering's own stream takes a pending place only for the moment its Open is verified.
   */
  readonly maxPendingStreams?: number;
  /**
   * Several servers per cluster: while this returns an address (the leader's; `''` while none is
   * known) this server is not the leader and refuses every stream with UNAVAILABLE, naming the
   * leader in the `isthmus-peering-leader` trailer, so the dialer goes there (a redirect).
   */
  readonly redirect?: () => string | undefined;
}

export const defaultMaxPendingStreams = 64;

/**
 * The acceptor end: the handler of `StreamResources` on the peering port. It admits a stream only
 * after a verified Open, keeps at most one active stream per peering (a second Open is refused with
 * ALREADY_EXISTS and the first is left alone), and runs a PeerStreamSession for it.
 */
export class StreamAcceptor {
  private readonly sessions = new Map<string, PeerStreamSession>();
  private readonly pending = new Set<StreamCall>();
  private closing = false;
  readonly logger: Logger;

  /** The `streamResources` implementation for `server.addService(PeeringServiceService, …)`. */
  readonly handler = (call: StreamCall): void => this.accept(call);

  constructor(readonly opts: AcceptorOptions) {
    this.logger = opts.logger ?? silentLogger();
  }

  accept(call: StreamCall): void {
    if (this.closing)
      return refuse(call, new IsthmusError('unavailable', 'the peering server is shutting down'));
    const leader = this.opts.redirect?.();
    if (leader !== undefined) {
      const metadata = new Metadata();
      metadata.set(peeringLeaderHeader, leader);
      call.emit('error', {
        code: GrpcStatus.UNAVAILABLE,
        details: `this server is not its cluster's peering leader; the leader is ${leader || 'not known yet'}`,
        metadata,
      });
      return;
    }
    const max = this.opts.maxPendingStreams ?? defaultMaxPendingStreams;
    if (this.pending.size >= max) {
      this.logger.warn({ pending: this.pending.size }, 'peering stream refused: too many pending');
      return refuse(
        call,
        new IsthmusError(
          'resource_exhausted',
          `${max} peering streams are already waiting for a verified Open; retry later`,
        ),
      );
    }
    new IncomingStream(this, call).listen();
  }

  isActive(peeringName: string): boolean {
    return this.sessions.get(peeringName)?.isActive ?? false;
  }

  activePeerings(): string[] {
    return [...this.sessions.keys()].sort();
  }

  stats(peeringName: string): SessionStats | undefined {
    return this.sessions.get(peeringName)?.stats();
  }

  /**
   * The peering was deleted here: sends Terminated on its stream and ends it. Resolves false when
   * no stream was active (the lead keeps the peering DELETING, and a later Open gets Terminated
   * when the authority answers `deleting`).
   */
  async terminate(peeringName: string): Promise<boolean> {
    const session = this.sessions.get(peeringName);
    if (!session) return false;
    session.terminate();
    await session.ended;
    return true;
  }

  /** Ends a peering's stream without Terminated, e.g. when its pinned roots changed. */
  disconnect(peeringName: string, reason: string): void {
    this.sessions.get(peeringName)?.stop(new IsthmusError('unavailable', reason));
  }

  /** Server shutdown: every stream ends with UNAVAILABLE, so dialers reconnect. */
  async close(): Promise<void> {
    this.closing = true;
    const error = new IsthmusError('unavailable', 'the peering server is shutting down');
    for (const call of this.pending) refuse(call, error);
    const sessions = [...this.sessions.values()];
    for (const s of sessions) s.stop(error);
    await Promise.all(sessions.map((s) => s.ended));
  }

  /** @internal */ trackPending(call: StreamCall, pending: boolean): void {
    if (pending) this.pending.add(call);
    else this.pending.delete(call);
  }

  /** @internal Claims the peering's slot and starts its session, or refuses the stream. */
  start(
    call: StreamCall,
    peer: AcceptedPeer,
    backlog: readonly ReplicationMessage[],
  ): PeerStreamSession | undefined {
    if (this.closing)
      return void refuse(
        call,
        new IsthmusError('unavailable', 'the peering server is shutting down'),
      );
    if (this.sessions.has(peer.peeringName)) {
      this.logger.warn({ peering: peer.peeringName }, 'second peering stream refused');
      return void refuse(
        call,
        new IsthmusError(
          'already_exists',
          `peering ${JSON.stringify(peer.peeringName)} already has an active stream`,
        ),
      );
    }
    let binding: PeerBinding;
    try {
      binding = this.opts.bind(peer);
    } catch (err) {
      const e = IsthmusError.from(err);
      this.logger.error(
        { peering: peer.peeringName, error: e.message },
        'peering stream could not be bound',
      );
      return void refuse(call, e);
    }
    const session = new PeerStreamSession(
      {
        ...timingsOf(this.opts),
        ...binding,
        imports: this.opts.imports,
        role: 'acceptor',
        peeringName: peer.peeringName,
        logger: this.logger,
      },
      serverTransport(call),
    );
    this.sessions.set(peer.peeringName, session);
    void session.ended.then(() => {
      if (this.sessions.get(peer.peeringName) === session) this.sessions.delete(peer.peeringName);
    });
    session.start();
    for (const msg of backlog) session.receive(msg);
    return session;
  }
}

/** One StreamResources call, from its first message until it has a session or is refused. */
class IncomingStream {
  private state: 'waiting' | 'verifying' | 'running' | 'done' = 'waiting';
  private readonly backlog: ReplicationMessage[] = [];
  private session: PeerStreamSession | undefined;
  private deadline: NodeJS.Timeout | undefined;

  constructor(
    private readonly acceptor: StreamAcceptor,
    private readonly call: StreamCall,
  ) {}

  listen(): void {
    const openTimeoutMs = this.acceptor.opts.openTimeoutMs ?? defaultTimings.openTimeoutMs;
    this.acceptor.trackPending(this.call, true);
    this.deadline = setTimeout(
      () =>
        this.refuse(GrpcStatus.DEADLINE_EXCEEDED, `no verified Open within ${openTimeoutMs} ms`),
      openTimeoutMs,
    ).unref();
    this.call.on('data', (msg: ReplicationMessage) => this.onMessage(msg));
    this.call.on('end', () => {
      this.session?.transportClosed('the dialer closed the stream');
      this.settle();
      if (!this.call.writableEnded) this.call.end();
    });
    this.call.on('cancelled', () => {
      this.session?.transportClosed('the dialer went away (stream cancelled)');
      this.settle();
    });
    this.call.on('error', (err: Partial<Error> | undefined) => {
      this.session?.transportClosed(err?.message ?? 'stream error');
      this.settle();
    });
  }

  private onMessage(msg: ReplicationMessage): void {
    if (this.state === 'running') this.session?.receive(msg);
    else if (this.state === 'verifying') this.backlog.push(msg);
    else if (this.state === 'waiting') {
      this.state = 'verifying';
      void this.admit(msg);
    }
  }

  /** Verifies the Open; a refusal changes nothing on this side. */
  private async admit(msg: ReplicationMessage): Promise<void> {
    const { authority } = this.acceptor.opts;
    let verdict: Awaited<ReturnType<StreamAuthority['verifyOpen']>>;
    let open: StreamOpen;
    try {
      if (msg.payload?.$case !== 'open') {
        throw new IsthmusError(
          'invalid_argument',
          `the first message of a peering stream must be Open, not ${payloadKind(msg)}`,
        );
      }
      const { peerId, streamSecret, remote } = msg.payload.value;
      if (!peerId)
        throw new IsthmusError('invalid_argument', 'Open.peer_id is required', 'peer_id');
      open = {
        peerId,
        streamSecret,
        remote: { partition: remote?.partition ?? '', datacenter: remote?.datacenter ?? '' },
      };
      verdict = await authority.verifyOpen(
        open,
        peerCertificateOf(this.call),
        peerIntermediatesOf(this.call),
      );
    } catch (err) {
      const e = IsthmusError.from(err);
      this.acceptor.logger.warn({ code: e.code, error: e.message }, 'peering stream refused');
      return this.refuse(grpcStatusOf(e), e.message);
    }
    if (this.state !== 'verifying') return;
    this.settle();
    if (verdict.deleting) return this.sendTerminated(verdict.peeringName);
    const peer = { peeringName: verdict.peeringName, peerId: open.peerId, remote: open.remote };
    this.session = this.acceptor.start(this.call, peer, this.backlog.splice(0));
    this.state = this.session ? 'running' : 'done';
  }

  /** The peering was deleted here while the dialer was away: it learns so on its next Open. */
  private sendTerminated(peeringName: string): void {
    this.acceptor.logger.info(
      { peering: peeringName },
      'peering deleted: Terminated sent to a reconnecting dialer',
    );
    this.state = 'done';
    this.call.write(terminatedMessage);
    this.call.end();
  }

  private refuse(code: GrpcStatus, details: string): void {
    if (this.state === 'running' || this.state === 'done') return;
    this.state = 'done';
    this.settle();
    this.call.emit('error', { code, details });
  }

  private settle(): void {
    clearTimeout(this.deadline);
    this.acceptor.trackPending(this.call, false);
    if (this.state !== 'running') this.state = 'done';
  }
}

function refuse(call: StreamCall, err: IsthmusError): void {
  call.emit('error', { code: grpcStatusOf(err), details: err.message });
}

function serverTransport(call: StreamCall): StreamTransport {
  const gone = () => call.cancelled || call.writableEnded || call.destroyed;
  return {
    write: (msg) => {
      if (!gone()) call.write(msg);
    },
    end: (error) => {
      if (gone()) return;
      if (error) refuse(call, error);
      else call.end();
    },
  };
}
