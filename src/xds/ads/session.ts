import { performance } from 'node:perf_hooks';
import type * as grpc from '@grpc/grpc-js';
import { status as GrpcStatus } from '@grpc/grpc-js';
import type { Node } from '../../gen/envoy/config/core/v3/base.js';
import { IsthmusError } from '../../errors.js';
import { grpcStatusOf } from '../../grpc-status.js';
import type { Logger } from '../../log.js';
import type { Metrics } from '../../metrics.js';
import type { ViewWatcher, XdsCache } from '../cache/xds-cache.js';
import type { ProxyView } from '../cache/proxy-view.js';
import type { CacheEntry } from '../cache/entry.js';
import type { TypeEntries } from '../cache/type-entries.js';
import {
  allTypeUrls,
  xdsTypeUrl,
  pushOrder,
  shortName,
  typeIndex,
  TypeUrl,
  type PushPhase,
  type XdsTypeUrl,
} from '../types.js';
import { entriesAt } from '../cache/proxy-view.js';
import type { FlushScheduler, ScheduledStream } from './flush-scheduler.js';
import type { PushCounters } from './push-counters.js';
import type { AdsApi, StreamStatus, TypeStatus } from './stream-status.js';
import { MalformedRequest } from './malformed-request.js';
import { PlanMemos } from './plan-memos.js';
import { TypeState } from './type-state.js';

export type { AdsApi } from './stream-status.js';

export interface SessionContext {
  readonly cache: XdsCache;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Largest Delta response before it is split in several (bytes). */
  readonly maxResponseBytes: number;
  /**
   * Longest wait for a client to subscribe to the endpoints of new clusters before LDS/RDS go out.
   */
  readonly warmingTimeoutMs: number;
  /** The server's flush batches (one per server: see FlushScheduler). */
  readonly scheduler: FlushScheduler;
  /** The server's push counters by type. */
  readonly pushes: PushCounters;
  /** A stream with no valid first request within this long is closed (ms). */
  readonly admissionTimeoutMs: number;
  /** Checks the stream may act as `nodeId`; throws an IsthmusError (e.g. permission_denied). */
  authorize(nodeId: string, metadata: grpc.Metadata): void | Promise<void>;
  /**
   * Takes one of the server's stream slots for a stream that passed admission; throws a
   * resource_exhausted IsthmusError when none is left. Streams not yet admitted hold no slot.
   */
  claimSlot(session: AdsSession): void;
  onReady(session: AdsSession): void;
  onClose(session: AdsSession): void;
  /**
   * What status readers see of the stream may have changed: a request (ACK, NACK, subscription),
   * a response written, a new view. On the hot path: it must only take note (XdsServer).
   */
  onStateChange?(session: AdsSession): void;
}

/**
 * A response ready to write, as data: the session numbers, encodes and records its messages, then
 * applies `commitPlan`. Planning happens on every flush of thousands of streams, so it allocates
 * no closures.
 */
export interface PlannedResponse {
  /** The resources of each message to write (a large Delta response is split in several). */
  readonly parts: readonly (readonly CacheEntry[])[];
  /** Delta removed_resources (carried by the first message). */
  readonly removed: readonly string[];
  /** SotW version_info ('' for Delta). */
  readonly versionInfo: string;
  /** SotW CDS/LDS: the response is the type's complete state. */
  readonly fullState: boolean;
}

interface BaseRequest {
  readonly node?: Node | undefined;
  readonly typeUrl: string;
  readonly responseNonce: string;
  readonly errorDetail?: { readonly message: string } | undefined;
}

/** Stream ids, unique in the process (log lines of two servers in one process stay apart). */
let nextSessionId = 1;

/**
 * The counter value a nonce of ours stands for (our nonces are the decimal strings of a per-stream
 * counter from 1), or -1 for any other string, which matches no response.
 */
function nonceSeq(nonce: string): number {
  const n = nonce.length;
  if (n === 0 || n > 15 || nonce.charCodeAt(0) === 48) return -1;
  let value = 0;
  for (let i = 0; i < n; i++) {
    const digit = nonce.charCodeAt(i) - 48;
    if (digit < 0 || digit > 9) return -1;
    value = value * 10 + digit;
  }
  return value;
}

const usesClusters = (t: XdsTypeUrl) => t === TypeUrl.listener || t === TypeUrl.route;
const clusterIndex = typeIndex(TypeUrl.cluster);
const endpointIndex = typeIndex(TypeUrl.endpoint);

/**
 * One ADS stream. The base class owns what SotW and Delta share: node admission, per-type state,
 * the flush loop that writes in make-before-break order and waits for ACKs, backpressure, NACK
 * bookkeeping. Subclasses turn requests into subscription changes and plan responses. Rules are
 * numbered as in docs/architecture.md §7; the invariants this push path relies on are §10 there.
 */
export abstract class AdsSession<Req extends BaseRequest = BaseRequest>
  implements ViewWatcher, ScheduledStream
{
  readonly id = nextSessionId++;
  readonly connectedAt = new Date();
  node: Node | undefined;
  protected view: ProxyView | undefined;
  /** The view's revision and publish time, read by every ACK without reading the view itself. */
  private viewRevision = 0;
  private viewPublishedAt = 0;
  /** Per type index (see PushStep.index): the type's state, once the client asked for it. */
  private readonly states: (TypeState | undefined)[] = allTypeUrls.map(() => undefined);
  private typeCount = 0;
  /**
   * What a flush reads of every type without reading its state: bit `index` set once the type was
   * requested (`requestedTypes`) and while a response of it awaits its ACK (`awaitingTypes`).
   */
  private requestedTypes = 0;
  private awaitingTypes = 0;
  /** What each push step last planned against with nothing to send (see PlanMemos). */
  protected readonly plans = new PlanMemos();
  private unwatch: (() => void) | undefined;
  private nonceCounter = 0;
  private writable = true;
  private flushQueued = false;
  /**
   * The last flush stopped early (awaiting an ACK, warming clusters, backpressure): an ACK may
   * unblock it.
   */
  private blocked = false;
  private closed = false;
  private warmingSince: number | undefined;
  private warmingTimer: NodeJS.Timeout | undefined;
  /**
   * Counts changes that can start clusters warming (a request that was more than a plain ACK, a
   * cluster sent, endpoints removed). With the clusters Map, it decides whether to check again.
   */
  private stateEpoch = 0;
  /** The clusters and epoch at which clusters were last found warm. */
  private warmAt: { clusters: TypeEntries; epoch: number } | undefined;
  /** Closes the stream if no valid first request admits it in time (issue 18). */
  private admissionTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly api: AdsApi,
    protected readonly ctx: SessionContext,
    private readonly call: grpc.ServerDuplexStream<Req, Buffer>,
  ) {
    this.admissionTimer = setTimeout(() => this.admissionExpired(), ctx.admissionTimeoutMs);
    this.admissionTimer.unref();
    call.on('data', (req: Req | MalformedRequest) => this.receive(req));
    call.on('end', () => {
      // The client half-closed: finish our side with OK, as Envoy does on a graceful drain.
      if (!this.closed) this.call.end();
      this.close();
    });
    call.on('error', () => this.close());
    call.on('close', () => this.close());
  }

  get nodeId(): string | undefined {
    return this.node?.id;
  }

  /** The state of each type by type index, undefined until the client asks for the type. */
  protected typeStates(): readonly (TypeState | undefined)[] {
    return this.states;
  }

  /** A copy of what status readers see of this stream (see StreamStatus). */
  status(): StreamStatus {
    const types = this.states
      .filter((ts) => ts !== undefined)
      .sort((a, b) => a.order - b.order)
      .map((ts): [XdsTypeUrl, TypeStatus] => [ts.typeUrl, ts.status()]);
    return {
      id: this.id,
      api: this.api,
      node: this.node,
      nodeId: this.nodeId,
      connectedAt: this.connectedAt,
      view: this.view,
      types: new Map(types),
    };
  }

  /** Responses written and not yet ACKed or NACKed, over all types. */
  get pendingResponses(): number {
    let n = 0;
    for (const ts of this.states) n += ts?.outstandingCount ?? 0;
    return n;
  }

  /**
   * Runs the admission check again with the stream's own metadata (its token was deleted, say):
   * a stream that would no longer be admitted ends with the check's error (PERMISSION_DENIED).
   */
  async reauthorize(): Promise<void> {
    if (this.closed || !this.node) return;
    try {
      await this.ctx.authorize(this.node.id, this.call.metadata);
    } catch (err) {
      this.fail(IsthmusError.from(err));
    }
  }

  /** Ends the stream (server shutdown): clients reconnect, to this replica or another. */
  end(code: GrpcStatus = GrpcStatus.UNAVAILABLE, details = 'server shutting down'): void {
    if (this.closed) return;
    this.call.emit('error', { code, details });
    this.close();
  }

  /**
   * Applies a request to the type's state. Returns false only for a plain ACK (no subscription
   * change, no NACK): that changes nothing a plan reads, so the stream need not plan again.
   */
  protected abstract applyRequest(ts: TypeState, req: Req, isFirst: boolean): boolean;
  /** Plans `phase` of the type against `entries`, the view's entries of the type. */
  protected abstract plan(
    ts: TypeState,
    phase: PushPhase,
    entries: TypeEntries,
  ): PlannedResponse | undefined;
  /** The bytes of message `part` of a planned response. */
  protected abstract encode(
    ts: TypeState,
    planned: PlannedResponse,
    part: number,
    nonce: string,
  ): Buffer;
  /** What the client holds once the planned response is written (the sent-state bookkeeping). */
  protected abstract commitPlan(ts: TypeState, planned: PlannedResponse): void;
  protected onViewChanged(): void {}

  /** A subclass changed what the client is taken to hold outside a request or a write. */
  protected clientStateChanged(): void {
    this.stateEpoch++;
  }

  /** Requests that arrive while the first one is being admitted, handled in order afterwards. */
  private backlog: Req[] | undefined;

  private receive(req: Req | MalformedRequest): void {
    if (this.closed) return;
    if (req instanceof MalformedRequest) {
      this.fail(
        new IsthmusError('invalid_argument', `malformed ${this.api} request: ${req.reason}`),
      );
      return;
    }
    if (this.backlog) this.backlog.push(req);
    else if (!this.node) {
      this.backlog = [];
      void this.admit(req);
    } else this.processSafely(req);
  }

  private async admit(req: Req): Promise<void> {
    try {
      const node = req.node;
      if (!node?.id)
        throw new IsthmusError(
          'invalid_argument',
          'the first request of a stream must carry node.id',
          'node.id',
        );
      await this.ctx.authorize(node.id, this.call.metadata);
      if (this.closed) return;
      this.ctx.claimSlot(this);
      clearTimeout(this.admissionTimer);
      // Envoy 1.40 lists its 500-odd built-in extensions in every node: about 200 KB per stream
      // once decoded, ten times the rest of a stream's state (bench:envoy). Nothing here reads
      // them.
      this.node = node.extensions.length === 0 ? node : { ...node, extensions: [] };
      this.setView(this.ctx.cache.view(node.id));
      this.unwatch = this.ctx.cache.watch(node.id, this);
      this.ctx.onReady(this);
    } catch (err) {
      this.fail(IsthmusError.from(err));
      return;
    }
    const backlog = this.backlog ?? [];
    this.backlog = undefined;
    for (const r of [req, ...backlog]) this.processSafely(r);
  }

  private processSafely(req: Req): void {
    if (this.closed) return;
    try {
      this.process(req);
    } catch (err) {
      this.fail(IsthmusError.from(err));
    }
  }

  private process(req: Req): void {
    if (!req.typeUrl)
      throw new IsthmusError('invalid_argument', 'an ADS request must carry type_url', 'type_url');
    // Types we do not serve (ECDS, runtime, ...) are left unanswered, as Envoy expects.
    const typeUrl = xdsTypeUrl(req.typeUrl);
    if (!typeUrl) return;
    const index = typeIndex(typeUrl);
    let ts = this.states[index];
    const isFirst = !ts;
    if (!ts) {
      ts = new TypeState(typeUrl, this.typeCount++);
      ts.observedRevision = this.viewRevision;
      this.states[index] = ts;
    }
    const changed = this.applyRequest(ts, req, isFirst);
    this.ctx.onStateChange?.(this);
    if (ts.requested) this.requestedTypes |= 1 << index;
    if (changed) {
      this.stateEpoch++;
      this.plans.forget(index);
      this.scheduleFlush();
    } else if (this.blocked) {
      // A plain ACK: it only matters to a flush that was waiting for it (one ACK per push to 1,000s
      // of proxies).
      this.scheduleFlush();
    }
  }

  /** ACK or NACK of an outstanding response, identified by its nonce. */
  protected settle(
    ts: TypeState,
    nonce: string,
    errorDetail: { readonly message: string } | undefined,
  ): void {
    const res = ts.takePending(nonceSeq(nonce));
    if (!res) return;
    if (ts.outstandingCount === 0) this.awaitingTypes &= ~(1 << ts.index);
    if (errorDetail) {
      const type = shortName[ts.typeUrl];
      // A NACK changes what may be re-sent; an ACK only unblocks what was already planned.
      this.plans.forget(ts.index);
      ts.onNack(res, errorDetail.message);
      this.ctx.metrics.xdsRejects.inc({ type });
      this.ctx.logger.warn(
        { nodeId: this.nodeId, type, nonce, error: errorDetail.message },
        'xds config rejected by proxy',
      );
      return;
    }
    ts.onAck(res);
    if (res.viewRevision > ts.observedRevision && this.view) {
      ts.observedRevision = res.viewRevision;
      if (res.viewRevision === this.viewRevision) {
        this.ctx.metrics.xdsConvergence.observe((performance.now() - this.viewPublishedAt) / 1000);
      }
    }
  }

  /** Rule 9: a changed cluster gets its endpoints re-sent, or Envoy keeps it warming. */
  protected forceEndpointsOfChanged(ts: TypeState, entries: readonly CacheEntry[]): void {
    const eds = this.states[endpointIndex];
    if (!eds) return;
    for (const e of entries) {
      const before = ts.sent.get(e.name);
      if (before === undefined || before === e.version) continue;
      for (const ref of e.refs) {
        if (ref.typeUrl !== TypeUrl.endpoint) continue;
        eds.force(ref.name);
        this.plans.forget(endpointIndex);
      }
    }
  }

  protected scheduleFlush(): void {
    if (this.flushQueued || this.closed) return;
    this.flushQueued = true;
    this.ctx.scheduler.enqueue(this);
  }

  private setView(view: ProxyView | undefined): void {
    this.view = view;
    this.viewRevision = view?.revision ?? 0;
    this.viewPublishedAt = view?.publishedAt ?? 0;
  }

  /** The cache published a new view for the stream's node (see ViewWatcher). */
  viewPublished(view: ProxyView): void {
    this.setView(view);
    this.onViewChanged();
    this.flushNow();
    this.ctx.onStateChange?.(this);
  }

  /**
   * A new view is pushed as it is published (as go-control-plane answers open watches in
   * SetSnapshot): the publisher's loop over thousands of proxies writes each one's response right
   * away instead of after the loop. What cannot go yet waits for its ACK, and then the latest view
   * is sent. A flush already scheduled for this stream covers the new view.
   */
  private flushNow(): void {
    if (!this.flushQueued) this.flushRest();
  }

  /**
   * `flushSteps`, where a failure ends this stream (INTERNAL) rather than the publisher or the
   * scheduler.
   */
  private guardedSteps(stopAfterWrite: boolean): 'done' | 'blocked' | 'wrote' {
    try {
      return this.flushSteps(stopAfterWrite);
    } catch (err) {
      this.ctx.logger.error(
        { nodeId: this.nodeId, error: (err as Error).message },
        'xds flush failed',
      );
      this.end(GrpcStatus.INTERNAL, 'internal error while pushing config');
      return 'blocked';
    }
  }

  /**
   * Called by the shared scheduler: one immediate drains every session due a flush. True when the
   * flush stopped right after writing a response; the scheduler then calls `flushRest`.
   */
  runScheduledFlush(): boolean {
    this.flushQueued = false;
    if (this.closed || !this.node) return false;
    const result = this.guardedSteps(true);
    this.blocked = result !== 'done';
    return result === 'wrote';
  }

  /**
   * Runs every push step: for `flushNow`, and for the rest of a flush `runScheduledFlush` stopped
   * after a write (whether anything waits behind it).
   */
  flushRest(): void {
    if (this.closed || !this.node) return;
    this.blocked = this.guardedSteps(false) !== 'done';
  }

  /**
   * Writes what is pending in the order of `pushOrder`. A type awaiting an ACK blocks every later
   * step except those whose `notBehind` names it (endpoints go while clusters await their ACK; the
   * table says why), and listeners/routes wait until the clusters they may name are warm (their
   * endpoints subscribed and sent), so a listener never arrives before the cluster it routes to.
   *
   * Returns 'blocked' when it stopped early (warming clusters, or something to send behind a
   * response still awaiting its ACK, written by this flush or before), 'done' when nothing waits,
   * so the ACK of what is outstanding has nothing to unblock and the stream is not flushed again
   * for it. With `stopAfterWrite`, 'wrote' right after writing a response (see `flushRest`).
   */
  private flushSteps(stopAfterWrite: boolean): 'done' | 'blocked' | 'wrote' {
    if (!this.writable) return 'blocked';
    /**
     * Bits of the types so far in the order that await an ACK (written by this flush or before).
     */
    let awaiting = 0;
    for (let slot = 0; slot < pushOrder.length; slot++) {
      const step = pushOrder[slot]!;
      const bit = 1 << step.index;
      if ((this.requestedTypes & bit) === 0) continue;
      if (step.phase === 'upsert' && usesClusters(step.typeUrl) && this.clustersWarming())
        return 'blocked';
      awaiting |= this.awaitingTypes & bit;
      const entries = entriesAt(this.view, step.index);
      // Neither the type's entries nor the stream's state changed since this step last had nothing
      // to send.
      if (this.plans.at(slot) === entries) continue;
      const ts = this.states[step.index]!;
      const planned = this.plan(ts, step.phase, entries);
      if (!planned) {
        if (this.view) this.plans.set(slot, entries);
        continue;
      }
      if ((awaiting & ~step.notBehind) !== 0) return 'blocked';
      this.write(ts, planned);
      // A plan sends everything its phase had to send against these entries, and one phase's
      // response never gives the other phase something to send: only this phase's memo moves.
      this.plans.set(slot, entries);
      if (stopAfterWrite) return 'wrote';
      awaiting |= bit;
    }
    return 'done';
  }

  /**
   * True while a cluster the client holds names endpoints it has not been sent (Envoy subscribes
   * to them only after it applied the cluster). Bounded by `warmingTimeoutMs` so a client that
   * never asks for endpoints still gets its listeners.
   */
  private clustersWarming(): boolean {
    const clusters = entriesAt(this.view, clusterIndex);
    if (this.warmAt?.clusters === clusters && this.warmAt.epoch === this.stateEpoch) return false;
    const cds = this.states[clusterIndex];
    const eds = this.states[endpointIndex];
    let missing = false;
    for (const [name, version] of cds?.sent ?? []) {
      const entry = clusters.get(name);
      if (entry?.version !== version) continue;
      if (entry.refs.some((r) => r.typeUrl === TypeUrl.endpoint && !eds?.sent.has(r.name)))
        missing = true;
    }
    if (!missing) {
      this.warmingSince = undefined;
      this.warmAt = { clusters, epoch: this.stateEpoch };
      return false;
    }
    const now = performance.now();
    this.warmingSince ??= now;
    const remaining = this.warmingSince + this.ctx.warmingTimeoutMs - now;
    if (remaining <= 0) return false;
    // Timers may fire a little early against performance.now(): re-arm for whatever remains.
    if (!this.warmingTimer) {
      this.warmingTimer = setTimeout(() => {
        this.warmingTimer = undefined;
        this.scheduleFlush();
      }, Math.ceil(remaining));
      this.warmingTimer.unref();
    }
    return true;
  }

  private write(ts: TypeState, planned: PlannedResponse): void {
    const started = performance.now();
    this.commitPlan(ts, planned);
    // Only a cluster sent or endpoints taken away can leave a cluster without its endpoints.
    if (
      ts.typeUrl === TypeUrl.cluster ||
      (ts.typeUrl === TypeUrl.endpoint && planned.removed.length > 0)
    )
      this.stateEpoch++;
    const viewRevision = this.viewRevision;
    const { parts, removed, versionInfo, fullState } = planned;
    this.awaitingTypes |= 1 << ts.index;
    for (let i = 0; i < parts.length; i++) {
      const seq = ++this.nonceCounter;
      const nonce = String(seq);
      ts.awaitAck({
        nonce,
        seq,
        versionInfo,
        resources: parts[i]!,
        removed: i === 0 ? removed : [],
        fullState,
        viewRevision,
      });
      ts.lastNonce = nonce;
      ts.answered = true;
      const ok = this.call.write(this.encode(ts, planned, i, nonce));
      this.ctx.pushes.pushed(ts.index);
      if (!ok) this.waitForDrain();
    }
    this.ctx.metrics.xdsPushDuration.observe((performance.now() - started) / 1000);
    this.ctx.onStateChange?.(this);
  }

  private waitForDrain(): void {
    if (!this.writable) return;
    this.writable = false;
    this.call.once('drain', () => {
      this.writable = true;
      this.scheduleFlush();
    });
  }

  private admissionExpired(): void {
    if (this.closed || this.node) return;
    this.ctx.logger.info(
      { api: this.api, stream: this.id, timeoutMs: this.ctx.admissionTimeoutMs },
      'xds stream closed: no valid first request in time',
    );
    this.ctx.metrics.xdsStreamsRefused.inc({ reason: 'timeout' });
    this.end(
      GrpcStatus.DEADLINE_EXCEEDED,
      `no valid first request within ${this.ctx.admissionTimeoutMs} ms (--xds-admission-timeout-ms): a stream's first request must carry node.id`,
    );
  }

  protected fail(err: IsthmusError): void {
    this.ctx.logger.info(
      { nodeId: this.nodeId, api: this.api, code: err.code, error: err.message },
      'xds stream refused',
    );
    if (err.code === 'permission_denied' || err.code === 'unauthenticated') {
      this.ctx.metrics.xdsStreamsRefused.inc({ reason: 'unauthenticated' });
    } else if (err.code === 'invalid_argument') {
      this.ctx.metrics.xdsStreamsRefused.inc({ reason: 'invalid' });
    } else if (err.code === 'resource_exhausted') {
      this.ctx.metrics.xdsStreamsRefused.inc({ reason: 'limit' });
    }
    this.end(grpcStatusOf(err), err.message);
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.warmingTimer);
    clearTimeout(this.admissionTimer);
    this.unwatch?.();
    this.ctx.onClose(this);
  }
}
