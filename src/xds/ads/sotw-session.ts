import type { DiscoveryRequest } from '../../gen/envoy/service/discovery/v3/discovery.js';
import { byName, type CacheEntry } from '../cache/entry.js';
import { entriesOf } from '../cache/proxy-view.js';
import type { TypeEntries } from '../cache/type-entries.js';
import { isFullStateType, TypeUrl, type PushPhase } from '../types.js';
import { encodeSotwResponse } from '../wire.js';
import { AdsSession, type PlannedResponse } from './session.js';
import type { TypeState } from './type-state.js';

/**
 * State-of-the-world ADS (`StreamAggregatedResources`). CDS and LDS responses carry the complete
 * state; EDS, RDS and SDS responses carry the named resources that changed. Rule numbers in this
 * file are those of docs/architecture.md §7.
 */
export class SotwSession extends AdsSession<DiscoveryRequest> {
  /**
   * False for what changes nothing a plan reads: a stale request, or a plain ACK naming the same
   * resources.
   */
  protected applyRequest(ts: TypeState, req: DiscoveryRequest, isFirst: boolean): boolean {
    const nonce = req.responseNonce;
    // Rule 4: a request answering anything but the newest response is stale and ignored.
    if (!isFirst && nonce !== '' && nonce !== ts.lastNonce) return false;
    const plainAck =
      !isFirst && nonce !== '' && !req.errorDetail && ts.sameSotwNames(req.resourceNames);
    if (nonce !== '') this.settle(ts, nonce, req.errorDetail);
    if (plainAck) return false;
    ts.applySotwNames(req.resourceNames);
    if (isFirst && req.versionInfo !== '') this.resume(ts, req.versionInfo);
    return true;
  }

  /**
   * A reconnecting client names the version it holds; versions are content hashes, so when it
   * equals ours the client is already up to date and nothing is re-sent (rule 12). Only for a
   * wildcard subscription: a client subscribing by name may have dropped its cache and keep its
   * per-type version (grpc-js-xds does), so named subscriptions are always answered.
   */
  private resume(ts: TypeState, clientVersion: string): void {
    if (!this.view || !ts.wildcard) return;
    const entries = entriesOf(this.view, ts.typeUrl);
    const desired = ts.desired(entries);
    if (entries.versionOf(desired) !== clientVersion) return;
    for (const e of desired) {
      ts.sent.set(e.name, e.version);
      ts.acked.set(e.name, e.version);
    }
    ts.lastState = new Map(desired.map((e) => [e.name, e]));
    ts.sentVersionInfo = ts.ackedVersionInfo = clientVersion;
  }

  protected override onViewChanged(): void {
    // Per-name types cannot express removal in SotW; forget what is gone so it is sent if it
    // returns.
    for (const ts of this.typeStates()) {
      if (!ts || isFullStateType(ts.typeUrl)) continue;
      const entries = entriesOf(this.view, ts.typeUrl);
      for (const name of [...ts.sent.keys()]) {
        if (entries.has(name)) continue;
        ts.sent.delete(name);
        this.plans.forget(ts.index);
        this.clientStateChanged();
      }
    }
  }

  protected plan(
    ts: TypeState,
    phase: PushPhase,
    entries: TypeEntries,
  ): PlannedResponse | undefined {
    if (!this.view) return undefined;
    if (isFullStateType(ts.typeUrl)) return this.planFullState(ts, phase, entries);
    return phase === 'upsert' ? this.planNamed(ts, entries) : undefined;
  }

  /**
   * CDS/LDS. The upsert step keeps names that are gone (make-before-break); the remove step, later
   * in the push order, sends the state without them.
   */
  private planFullState(
    ts: TypeState,
    phase: PushPhase,
    entries: TypeEntries,
  ): PlannedResponse | undefined {
    const desired = ts.desired(entries);
    const desiredNames = new Set(desired.map((e) => e.name));
    const gone = [...ts.lastState.values()].filter((e) => !desiredNames.has(e.name));
    let state: readonly CacheEntry[];
    if (phase === 'upsert') {
      const changed = desired.some(
        (e) => ts.lastState.get(e.name)?.version !== e.version || ts.forced?.has(e.name),
      );
      if (!changed && ts.sentVersionInfo !== '') return undefined;
      state = gone.length === 0 ? desired : [...desired, ...gone].sort(byName);
    } else {
      if (gone.length === 0) return undefined;
      state = desired;
    }
    const version = entries.versionOf(state);
    if (version === ts.sentVersionInfo) return undefined;
    return this.response(state, version, true);
  }

  /** EDS/RDS/SDS: only resources whose version the client has not been sent (or forced ones). */
  private planNamed(ts: TypeState, entries: TypeEntries): PlannedResponse | undefined {
    const desired = ts.desired(entries);
    const changed = ts.unsent(desired);
    if (changed.length === 0 && !ts.owesInitialResponse) return undefined;
    return this.response(changed, entries.versionOf(desired), false);
  }

  private response(
    entries: readonly CacheEntry[],
    versionInfo: string,
    fullState: boolean,
  ): PlannedResponse {
    return { parts: [entries], removed: [], versionInfo, fullState };
  }

  protected encode(ts: TypeState, planned: PlannedResponse, part: number, nonce: string): Buffer {
    return encodeSotwResponse(
      planned.versionInfo,
      ts.typeUrl,
      nonce,
      planned.parts[part]!.map((e) => e.sotwField),
    );
  }

  protected commitPlan(ts: TypeState, planned: PlannedResponse): void {
    const entries = planned.parts[0]!;
    if (ts.typeUrl === TypeUrl.cluster) this.forceEndpointsOfChanged(ts, entries);
    if (planned.fullState) {
      ts.lastState = new Map(entries.map((e) => [e.name, e]));
      ts.sent.clear();
    }
    for (const e of entries) {
      ts.sent.set(e.name, e.version);
      ts.written(e.name);
    }
    ts.sentVersionInfo = planned.versionInfo;
  }
}
