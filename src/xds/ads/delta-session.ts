import type { DeltaDiscoveryRequest } from '../../gen/envoy/service/discovery/v3/discovery.js';
import type { CacheEntry } from '../cache/entry.js';
import { entriesOf } from '../cache/proxy-view.js';
import type { TypeEntries } from '../cache/type-entries.js';
import { TypeUrl, type PushPhase } from '../types.js';
import { encodeDeltaResponse } from '../wire.js';
import { AdsSession, type PlannedResponse } from './session.js';
import type { TypeState } from './type-state.js';

/**
 * Incremental ADS (`DeltaAggregatedResources`). `ts.sent` is the version of each resource the
 * client holds as far as we know: seeded from `initial_resource_versions` on reconnect (rule 10),
 * updated as responses are written. Rule numbers in this file are those of docs/architecture.md §7.
 */
export class DeltaSession extends AdsSession<DeltaDiscoveryRequest> {
  protected applyRequest(ts: TypeState, req: DeltaDiscoveryRequest, isFirst: boolean): boolean {
    // Rule 4: ACK/NACK bookkeeping needs the matching nonce; subscription changes apply regardless.
    if (req.responseNonce !== '') this.settle(ts, req.responseNonce, req.errorDetail);
    const plainAck =
      !isFirst &&
      req.responseNonce !== '' &&
      !req.errorDetail &&
      req.resourceNamesSubscribe.length === 0 &&
      req.resourceNamesUnsubscribe.length === 0;
    if (plainAck) return false;
    if (isFirst) {
      for (const [name, version] of Object.entries(req.initialResourceVersions)) {
        ts.sent.set(name, version);
        ts.acked.set(name, version);
      }
    }
    const added = ts.applyDeltaChanges(req.resourceNamesSubscribe, req.resourceNamesUnsubscribe);
    const entries = entriesOf(this.view, ts.typeUrl);
    for (const name of added) {
      // Rule 7: a newly subscribed name is always answered, with the resource or with its removal.
      if (!isFirst || ts.sent.get(name) !== entries.get(name)?.version) ts.sent.delete(name);
      if (!entries.has(name)) ts.missing(name);
    }
    return true;
  }

  protected plan(
    ts: TypeState,
    phase: PushPhase,
    entries: TypeEntries,
  ): PlannedResponse | undefined {
    if (!this.view) return undefined;
    return phase === 'upsert' ? this.planUpserts(ts, entries) : this.planRemovals(ts, entries);
  }

  /**
   * When the entries are a derivation of the Map this type last had nothing to send against, only
   * the entries that differ can be unsent (see TypeEntries.changedSince): nothing else changed for
   * this stream since, or the plan memo would have been cleared.
   */
  private planUpserts(ts: TypeState, entries: TypeEntries): PlannedResponse | undefined {
    const from = this.plans.of(ts.index, 'upsert');
    const changedOnly = entries.changedSince(from);
    const candidates = changedOnly
      ? ts.changedInScope(entries, from!, changedOnly)
      : ts.desired(entries);
    const changed = ts.unsent(candidates);
    if (changed.length === 0 && !ts.owesInitialResponse) return undefined;
    return this.response(changed, []);
  }

  /**
   * A removal plan reads only the names of the entries: the same names as a Map with nothing to
   * remove, nothing to remove.
   */
  private planRemovals(ts: TypeState, entries: TypeEntries): PlannedResponse | undefined {
    if (entries.changedSince(this.plans.of(ts.index, 'remove'))) return undefined;
    let removed: Set<string> | undefined;
    for (const name of ts.sent.keys())
      if (!entries.has(name) || !ts.inScope(name)) (removed ??= new Set()).add(name);
    for (const name of ts.notFound ?? [])
      if (!entries.has(name) && ts.inScope(name)) (removed ??= new Set()).add(name);
    if (!removed) return undefined;
    return this.response([], [...removed].sort());
  }

  private response(entries: CacheEntry[], removed: string[]): PlannedResponse {
    return {
      parts: splitBySize(entries, this.ctx.maxResponseBytes),
      removed,
      versionInfo: '',
      fullState: false,
    };
  }

  protected encode(ts: TypeState, planned: PlannedResponse, part: number, nonce: string): Buffer {
    return encodeDeltaResponse(
      ts.typeUrl,
      nonce,
      planned.parts[part]!.map((e) => e.deltaField),
      part === 0 ? planned.removed : [],
    );
  }

  protected commitPlan(ts: TypeState, planned: PlannedResponse): void {
    for (const entries of planned.parts) {
      if (ts.typeUrl === TypeUrl.cluster) this.forceEndpointsOfChanged(ts, entries);
      for (const e of entries) {
        // A name the client did not hold may have to go again later: removals are planned anew.
        if (!ts.sent.has(e.name)) this.plans.forgetRemovals(ts.index);
        ts.sent.set(e.name, e.version);
        ts.written(e.name);
      }
    }
    for (const name of planned.removed) {
      ts.sent.delete(name);
      ts.removalWritten(name);
    }
  }
}

/** Rule 14: large responses are split so no single message approaches the client's limit. */
function splitBySize(entries: CacheEntry[], maxBytes: number): CacheEntry[][] {
  if (entries.length <= 1) return [entries];
  const parts: CacheEntry[][] = [[]];
  let size = 0;
  for (const e of entries) {
    const current = parts[parts.length - 1]!;
    if (current.length > 0 && size + e.size > maxBytes) {
      parts.push([e]);
      size = e.size;
    } else {
      current.push(e);
      size += e.size;
    }
  }
  return parts;
}
