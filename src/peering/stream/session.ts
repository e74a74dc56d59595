import type {
  ReplicationMessage,
  ReplicationMessage_Request,
  ReplicationMessage_Response,
} from '../../gen/isthmus/peering/v1/peering.js';
import { IsthmusError } from '../../errors.js';
import { grpcStatusOf } from '../../grpc-status.js';
import type { Logger } from '../../log.js';
import { ChunkAssembler } from './chunks.js';
import { Liveness } from './liveness.js';
import { guardObserver } from './observer.js';
import {
  buildAck,
  buildOpen,
  buildResponses,
  type OutgoingMessage,
  buildSubscribe,
  heartbeatMessage,
  importBatchBytes,
  importBatchResponses,
  parseResponse,
  terminatedMessage,
} from './messages.js';
import {
  exportsOf,
  importsOf,
  isResourceUrl,
  type ResourceUrl,
  type StreamRole,
} from './resources.js';
import {
  defaultTimings,
  type ResourceChange,
  type ResourceSink,
  type ResourceSource,
  type SinkChange,
  type StreamObserver,
  type StreamOpen,
  type ResolvedTimings,
  type StreamTimings,
} from './types.js';

/** The two ends of a gRPC stream look alike to a session: messages out, and one way to end. */
export interface StreamTransport {
  write(msg: ReplicationMessage): void;
  /**
   * Ends the stream: gracefully (OK / half-close) when `error` is undefined, else with its status.
   */
  end(error?: IsthmusError): void;
}

/** How a session ended. Only `failed` and `terminated` by the peer reach the observer. */
export type SessionEnd =
  | { readonly kind: 'terminated'; readonly by: 'local' | 'peer' }
  | { readonly kind: 'stopped' }
  | { readonly kind: 'failed'; readonly error: string };

export interface SessionOptions extends StreamTimings {
  readonly role: StreamRole;
  /** For logs and errors. */
  readonly peeringName: string;
  readonly source: ResourceSource;
  readonly sink: ResourceSink;
  readonly observer: StreamObserver;
  /** What this side subscribes to (default: `importsOf[role]`). */
  readonly imports?: readonly ResourceUrl[] | undefined;
  /**
   * What the peer may subscribe to (default: `exportsOf[role]`); other subscriptions are ignored.
   */
  readonly exports?: readonly ResourceUrl[];
  /** Dialer: the Open written before anything else. */
  readonly open?: StreamOpen;
  readonly logger: Logger;
}

export interface SessionStats {
  readonly active: boolean;
  /** Resource URLs the peer subscribed to. */
  readonly peerSubscriptions: readonly ResourceUrl[];
  readonly responsesSent: number;
  readonly acked: number;
  readonly nacked: number;
  /** Responses sent and not yet ACKed or NACKed. */
  readonly outstanding: number;
  readonly responsesReceived: number;
  readonly nacksSent: number;
  /** Encoded bytes of every Response written, and of the largest one. */
  readonly responseBytesSent: number;
  readonly largestMessageBytes: number;
  readonly lastNack?: { readonly message: string; readonly at: Date } | undefined;
}

interface SentResponse {
  readonly resourceUrl: ResourceUrl;
  readonly resourceId: string;
}

type Payload = NonNullable<ReplicationMessage['payload']>;
type Handlers = {
  readonly [K in Payload['$case']]: (value: Extract<Payload, { $case: K }>['value']) => void;
};

/** A sink took longer than `applyTimeoutMs`; the message names what it was applying. */
class ApplyTimeout extends Error {}

/** A response as received: its change once whole and parsed, or the error that NACKs it. */
type Received =
  | { readonly res: ReplicationMessage_Response; readonly change: SinkChange }
  | { readonly res: ReplicationMessage_Response; readonly error: IsthmusError };

/**
 * One replication stream after Open, the same at both ends (docs/architecture.md §6 "Stream"):
 * subscribes to what it imports, answers the peer's subscriptions from its source with one Response
 * per change, applies the peer's responses to its sink in order and ACKs or NACKs each, tracks its
 * own outstanding nonces, and keeps the heartbeat and silence deadline. It never reconnects: the
 * dialer starts a new session for that.
 */
export class PeerStreamSession {
  readonly ended: Promise<SessionEnd>;
  private resolveEnded!: (end: SessionEnd) => void;
  private readonly timings: ResolvedTimings;
  private readonly liveness: Liveness;
  private readonly imports: ReadonlySet<ResourceUrl>;
  private readonly exports: ReadonlySet<ResourceUrl>;
  private readonly subscriptions = new Map<ResourceUrl, () => void>();
  private readonly outstanding = new Map<string, SentResponse>();
  private readonly handlers: Handlers;
  private readonly observer: Required<StreamObserver>;
  /** Responses are applied in order, a batch at a time; the task catches its own errors. */
  private applyQueue: Promise<void> = Promise.resolve();
  /** Responses received and not yet applied, in arrival order. */
  private inbox: ReplicationMessage_Response[] = [];
  private draining = false;
  private nonceCounter = 0;
  private active = false;
  private closed = false;
  private readonly chunks = new ChunkAssembler();
  private counts = {
    responsesSent: 0,
    acked: 0,
    nacked: 0,
    responsesReceived: 0,
    nacksSent: 0,
    responseBytesSent: 0,
    largestMessageBytes: 0,
  };
  private lastNack: SessionStats['lastNack'];

  constructor(
    private readonly opts: SessionOptions,
    private readonly transport: StreamTransport,
  ) {
    this.ended = new Promise((resolve) => (this.resolveEnded = resolve));
    this.timings = resolveTimings(opts);
    // `role` is bound on the logger by whoever runs the stream (PeeringManager), so it is not
    // repeated here.
    this.observer = guardObserver(opts.observer, opts.logger, { peering: opts.peeringName });
    this.imports = new Set(opts.imports ?? importsOf[opts.role]);
    this.exports = new Set(opts.exports ?? exportsOf[opts.role]);
    this.liveness = new Liveness({
      intervalMs: this.timings.heartbeatIntervalMs,
      timeoutMs: this.timings.heartbeatTimeoutMs,
      // A dialer waits for the acceptor's first message as the sign its Open was accepted.
      firstTimeoutMs:
        opts.role === 'dialer' ? this.timings.openTimeoutMs : this.timings.heartbeatTimeoutMs,
      sendHeartbeat: () => this.write(heartbeatMessage),
      onSilence: (ms, heardAny) => this.onSilence(ms, heardAny),
    });
    this.handlers = {
      open: () => this.protocolError('Open sent twice'),
      request: (req) =>
        req.responseNonce === '' ? this.onSubscribe(req.resourceUrl) : this.onAck(req),
      response: (res) => this.onResponse(res),
      heartbeat: () => this.observer.onHeartbeat(new Date()),
      terminated: () => this.onPeerTerminated(),
    };
  }

  get isActive(): boolean {
    return this.active && !this.closed;
  }

  /** Whether the stream was ever active (a dialer resets its backoff after such a stream). */
  get wasActive(): boolean {
    return this.active;
  }

  /** Writes the Open (dialer), subscribes to every import and starts heartbeats. */
  start(): void {
    if (this.opts.open) this.write(buildOpen(this.opts.open));
    for (const url of this.imports) this.write(buildSubscribe(url));
    this.liveness.start();
    if (this.opts.role === 'acceptor') this.markActive();
  }

  /** A message from the peer. */
  receive(msg: ReplicationMessage): void {
    if (this.closed) return;
    this.liveness.received();
    this.observer.onReceive(new Date());
    const payload = msg.payload;
    // The acceptor only writes after it verified our Open; a Terminated instead means it was
    // deleted.
    if (this.opts.role === 'dialer' && payload?.$case !== 'terminated') this.markActive();
    // A payload this version does not know (a newer peer) decodes as empty: ignore it.
    if (!payload) return;
    (this.handlers[payload.$case] as (value: unknown) => void)(payload.value);
  }

  /** The transport ended or failed underneath (the peer went away, the connection broke). */
  transportClosed(reason: string): void {
    this.close({ kind: 'failed', error: reason }, 'none');
  }

  /** The local side deleted the peering: tell the peer, then end the stream. */
  terminate(): void {
    if (this.closed) return;
    this.write(terminatedMessage);
    this.close({ kind: 'terminated', by: 'local' }, 'ok');
  }

  /** Ends the stream without Terminated (shutdown, or the stream was replaced). */
  stop(error?: IsthmusError): void {
    this.close({ kind: 'stopped' }, error ?? 'ok');
  }

  stats(): SessionStats {
    return {
      active: this.isActive,
      peerSubscriptions: [...this.subscriptions.keys()],
      ...this.counts,
      outstanding: this.outstanding.size,
      lastNack: this.lastNack,
    };
  }

  private markActive(): void {
    if (this.active) return;
    this.active = true;
    this.opts.logger.info({ peering: this.opts.peeringName }, 'peering stream active');
    this.observer.onActive();
  }

  private onSubscribe(url: string): void {
    if (!isResourceUrl(url) || !this.exports.has(url)) {
      // A newer peer may ask for types we do not export yet; leaving them unanswered is compatible.
      this.opts.logger.warn(
        { peering: this.opts.peeringName, resourceUrl: url },
        'peer subscribed to a resource we do not export',
      );
      return;
    }
    if (this.subscriptions.has(url)) return;
    this.subscriptions.set(url, () => undefined);
    try {
      const unsubscribe = this.opts.source.subscribe(url, (change) => this.sendChange(url, change));
      if (this.closed) unsubscribe();
      else this.subscriptions.set(url, unsubscribe);
    } catch (err) {
      const message = `exporting ${url} failed: ${IsthmusError.from(err).message}`;
      this.close({ kind: 'failed', error: message }, new IsthmusError('internal', message));
    }
  }

  private sendChange(url: ResourceUrl, change: ResourceChange): void {
    if (this.closed) return;
    const nonce = String(++this.nonceCounter);
    let messages: OutgoingMessage[];
    try {
      messages = buildResponses(nonce, url, change);
    } catch (err) {
      this.opts.logger.error(
        {
          peering: this.opts.peeringName,
          resourceUrl: url,
          resourceId: change.resourceId,
          error: (err as Error).message,
        },
        'peering resource not sent',
      );
      return;
    }
    this.outstanding.set(nonce, { resourceUrl: url, resourceId: change.resourceId });
    this.counts.responsesSent++;
    // The chunks of one resource go out back to back: the receiver holds one resource in progress.
    for (const { message, bytes } of messages) {
      this.counts.responseBytesSent += bytes;
      this.counts.largestMessageBytes = Math.max(this.counts.largestMessageBytes, bytes);
      this.write(message);
    }
    this.observer.onResponseSent({
      resourceUrl: url,
      resourceId: change.resourceId,
      operation: change.operation,
      messageBytes: messages.map((m) => m.bytes),
    });
  }

  private onAck(req: ReplicationMessage_Request): void {
    const sent = this.outstanding.get(req.responseNonce);
    // Unknown nonces (never sent, or already settled) carry nothing to record.
    if (!sent) return;
    this.outstanding.delete(req.responseNonce);
    if (!req.error) {
      this.counts.acked++;
      return;
    }
    this.counts.nacked++;
    this.lastNack = { message: req.error.message, at: new Date() };
    this.opts.logger.warn(
      {
        peering: this.opts.peeringName,
        resourceUrl: sent.resourceUrl,
        resourceId: sent.resourceId,
        nonce: req.responseNonce,
        error: req.error.message,
      },
      'peer rejected a replicated resource',
    );
    this.opts.source.rejected?.(sent.resourceUrl, sent.resourceId);
    this.observer.onNack(req.error.message, {
      ...sent,
      nonce: req.responseNonce,
      code: req.error.code,
    });
  }

  /**
   * Queues a response. Whatever arrives while earlier responses are being applied is applied next,
   * together (`ResourceSink.applyBatch`): a burst of replicated services costs a few commits.
   */
  private onResponse(res: ReplicationMessage_Response): void {
    this.inbox.push(res);
    if (this.draining) return;
    this.draining = true;
    this.applyQueue = this.applyQueue.then(() => this.drain());
  }

  private async drain(): Promise<void> {
    while (this.inbox.length > 0 && !this.closed) {
      // Let the transport deliver what it has read meanwhile (a sink's commit can hold the event
      // loop), so a burst is applied in a few large batches rather than many small ones.
      await new Promise<void>((resolve) => setImmediate(resolve));
      const batch = this.takeBatch();
      await this.applyBatch(batch);
    }
    this.draining = false;
  }

  /**
   * The next responses to apply, their chunks assembled, up to the batch bounds (one at a time
   * for a sink without `applyBatch`).
   */
  private takeBatch(): Received[] {
    const maxChanges = this.opts.sink.applyBatch ? importBatchResponses : 1;
    const batch: Received[] = [];
    let taken = 0;
    let changes = 0;
    let bytes = 0;
    while (taken < this.inbox.length && changes < maxChanges && bytes < importBatchBytes) {
      const received = this.receiveOne(this.inbox[taken++]!);
      if (!received) continue; // more chunks to come; the nonce is answered after the last
      batch.push(received);
      if ('change' in received) {
        changes++;
        bytes += received.res.resource?.value.length ?? 0;
      }
    }
    this.inbox = this.inbox.slice(taken);
    return batch;
  }

  /** One response: assembled, checked and parsed; `undefined` while its chunks are missing. */
  private receiveOne(received: ReplicationMessage_Response): Received | undefined {
    this.counts.responsesReceived++;
    const assembled = this.chunks.add(received);
    if (!assembled.ok) return { res: received, error: assembled.error };
    const res = assembled.value;
    if (!res) return undefined;
    if (!isResourceUrl(res.resourceUrl) || !this.imports.has(res.resourceUrl)) {
      const message = `not subscribed to ${res.resourceUrl || '(empty resource_url)'}`;
      return { res, error: new IsthmusError('invalid_argument', message, 'resource_url') };
    }
    const parsed = parseResponse(res);
    if (!parsed.ok) return { res, error: parsed.error };
    return { res, change: { resourceUrl: res.resourceUrl, change: parsed.value } };
  }

  /** Applies a batch to the sink and ACKs or NACKs each response, in order. */
  private async applyBatch(batch: readonly Received[]): Promise<void> {
    const together = this.opts.sink.applyBatch?.bind(this.opts.sink);
    if (!together) {
      for (const received of batch) {
        if (this.closed) return;
        const error = 'error' in received ? received.error : await this.applyAlone(received);
        if (error !== 'timeout') this.answer(received.res, error);
      }
      return;
    }
    const changes = batch.flatMap((r) => ('change' in r ? [r.change] : []));
    let errors: readonly (IsthmusError | undefined)[] = [];
    if (changes.length > 0) {
      const what = changes.length === 1 ? describe(changes[0]!) : `${changes.length} responses`;
      const applied = await this.settle(what, () => together(changes));
      if (applied === 'timeout') return;
      errors = applied instanceof IsthmusError ? changes.map(() => applied) : applied;
    }
    let next = 0;
    for (const received of batch)
      this.answer(received.res, 'error' in received ? received.error : errors[next++]);
  }

  private async applyAlone(
    received: Extract<Received, { change: SinkChange }>,
  ): Promise<IsthmusError | undefined | 'timeout'> {
    const { resourceUrl, change } = received.change;
    const applied = await this.settle(describe(received.change), async () =>
      this.opts.sink.apply(resourceUrl, change),
    );
    return applied === 'timeout' || applied instanceof IsthmusError ? applied : undefined;
  }

  /**
   * Runs a sink call under the apply deadline: its value, or the error it threw, or `timeout`
   * once the deadline passed (the stream is then ended: a stuck sink must not hold it forever).
   */
  private async settle<T>(
    what: string,
    apply: () => Promise<T>,
  ): Promise<T | IsthmusError | 'timeout'> {
    try {
      return await this.withApplyDeadline(apply);
    } catch (err) {
      if (!(err instanceof ApplyTimeout)) return IsthmusError.from(err);
      const message = `applying ${what} took longer than ${this.timings.applyTimeoutMs} ms`;
      this.close({ kind: 'failed', error: message }, new IsthmusError('unavailable', message));
      return 'timeout';
    }
  }

  /** ACKs (no error) or NACKs one response's nonce. */
  private answer(res: ReplicationMessage_Response, error: IsthmusError | undefined): void {
    if (this.closed) return;
    if (error) {
      this.counts.nacksSent++;
      this.opts.logger.warn(
        {
          peering: this.opts.peeringName,
          resourceUrl: res.resourceUrl,
          resourceId: res.resourceId,
          error: error.message,
        },
        'replicated resource rejected',
      );
    }
    this.write(
      buildAck(
        res.resourceUrl,
        res.nonce,
        error && { code: grpcStatusOf(error), message: error.message },
      ),
    );
  }

  private async withApplyDeadline<T>(apply: () => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new ApplyTimeout()), this.timings.applyTimeoutMs);
    });
    try {
      return await Promise.race([apply(), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  private onPeerTerminated(): void {
    this.opts.logger.info(
      { peering: this.opts.peeringName, role: this.opts.role },
      'peer terminated the peering',
    );
    this.close({ kind: 'terminated', by: 'peer' }, 'ok');
  }

  private onSilence(ms: number, heardAny: boolean): void {
    const message =
      heardAny || this.opts.role === 'acceptor'
        ? `no heartbeat for ${ms} ms`
        : `no answer to Open within ${ms} ms`;
    this.close({ kind: 'failed', error: message }, new IsthmusError('unavailable', message));
  }

  private protocolError(message: string): void {
    this.close(
      { kind: 'failed', error: `protocol error: ${message}` },
      new IsthmusError('invalid_argument', message),
    );
  }

  private write(msg: ReplicationMessage): void {
    if (this.closed) return;
    this.transport.write(msg);
    this.observer.onSend(new Date());
  }

  /**
   * Stops everything at once (queued responses are no longer applied), ends the transport, then
   * reports the end once a response being applied has finished, so an observer that drops imports
   * on `onTerminated` never races a late apply.
   */
  private close(end: SessionEnd, transportEnd: 'ok' | 'none' | IsthmusError): void {
    if (this.closed) return;
    this.closed = true;
    this.liveness.stop();
    for (const unsubscribe of this.subscriptions.values()) unsubscribe();
    if (transportEnd !== 'none')
      this.transport.end(transportEnd === 'ok' ? undefined : transportEnd);
    const log = {
      peering: this.opts.peeringName,
      role: this.opts.role,
      end: end.kind,
      error: end.kind === 'failed' ? end.error : undefined,
    };
    this.opts.logger.info(log, 'peering stream ended');
    void this.applyQueue.then(() => {
      if (end.kind === 'failed') this.observer.onFailing(end.error);
      else if (end.kind === 'terminated' && end.by === 'peer') this.observer.onTerminated();
      this.resolveEnded(end);
    });
  }
}

/** A change as log and error messages name it. */
function describe({ resourceUrl, change }: SinkChange): string {
  return `${resourceUrl} ${change.resourceId}`;
}

/** The stream's timings: each one as the options set it, else its default. */
function resolveTimings(opts: StreamTimings): ResolvedTimings {
  const d = defaultTimings;
  return {
    heartbeatIntervalMs: opts.heartbeatIntervalMs ?? d.heartbeatIntervalMs,
    heartbeatTimeoutMs: opts.heartbeatTimeoutMs ?? d.heartbeatTimeoutMs,
    openTimeoutMs: opts.openTimeoutMs ?? d.openTimeoutMs,
    applyTimeoutMs: opts.applyTimeoutMs ?? d.applyTimeoutMs,
  };
}
