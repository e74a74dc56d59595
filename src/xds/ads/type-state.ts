import { typeIndex, type XdsTypeUrl } from '../types.js';
import type { CacheEntry } from '../cache/entry.js';
import type { TypeEntries } from '../cache/type-entries.js';
import type { NackRecord, TypeStatus } from './stream-status.js';

export type { NackRecord } from './stream-status.js';

/** A response written to the stream and not yet ACKed or NACKed. */
export interface SentResponse {
  readonly nonce: string;
  /**
   * The stream's counter value `nonce` is the decimal of (matched on ACK without reading the
   * string).
   */
  readonly seq: number;
  /** SotW: the response's version_info. */
  readonly versionInfo: string;
  /** The resources the response carried (each names its version). */
  readonly resources: readonly CacheEntry[];
  /** Delta removed_resources. */
  readonly removed: readonly string[];
  /** SotW CDS/LDS: names absent from `resources` are removed once this is applied. */
  readonly fullState: boolean;
  readonly viewRevision: number;
}

/**
 * Per stream and type: subscriptions, what was sent, ACKed and NACKed (docs/architecture.md §7
 * rule 3). Private to its session: status readers get `status()`, a copy.
 */
export class TypeState {
  /** The client has asked for this type at least once on this stream. */
  requested = false;
  /** Wildcard from an empty first request: ends at the first explicit subscription (rule 6). */
  legacyWildcard = false;
  /** Wildcard from an explicit `*`. */
  explicitWildcard = false;
  readonly subscribed = new Set<string>();
  /** name → version last sent (Delta: the version the client holds as far as we know). */
  readonly sent = new Map<string, string>();
  /** name → the version the client ACKed last. */
  readonly acked = new Map<string, string>();
  /*
   * The three collections below are mostly empty, and absent while empty: a push or an ACK to
   * thousands of streams then reads a field of this state instead of three more cold objects.
   */
  /** name → the client's rejection of the version it was last sent. */
  nacked: Map<string, NackRecord> | undefined;
  /** Names to send even though their version did not change (endpoints of a changed cluster). */
  forced: Set<string> | undefined;
  /** Delta: subscribed names that do not exist, to report in removed_resources. */
  notFound: Set<string> | undefined;
  /**
   * Responses written and not yet ACKed or NACKed, oldest first: mostly one (a type waits for its
   * ACK before it is written again, unless a large response was split), kept in a field; any more
   * in an array.
   */
  private firstPending: SentResponse | undefined;
  private morePending: SentResponse[] | undefined;
  lastNonce = '';
  /** Any response for this type was written on this stream. */
  answered = false;
  /** SotW: version_info of the last response sent, and of the last one ACKed. */
  sentVersionInfo = '';
  ackedVersionInfo = '';
  /** SotW CDS/LDS: the complete state last sent (kept for make-before-break removals). */
  lastState: ReadonlyMap<string, CacheEntry> = new Map<string, CacheEntry>();
  lastNack: NackRecord | undefined;
  /** The newest view revision whose ACK fed the convergence metric. */
  observedRevision = 0;
  /** The type's position in `allTypeUrls` (see PushStep.index). */
  readonly index: number;

  /**
   * `order`: how many types the stream had before this one (status lists types in the order the
   * client first asked for them).
   */
  constructor(
    readonly typeUrl: XdsTypeUrl,
    readonly order = 0,
  ) {
    this.index = typeIndex(typeUrl);
  }

  get outstandingCount(): number {
    return this.firstPending ? 1 + (this.morePending?.length ?? 0) : 0;
  }

  /** A response was written: it awaits its ACK. */
  awaitAck(res: SentResponse): void {
    if (!this.firstPending) this.firstPending = res;
    else (this.morePending ??= []).push(res);
  }

  /** Takes the outstanding response written with counter value `seq` (its nonce), if any. */
  takePending(seq: number): SentResponse | undefined {
    const first = this.firstPending;
    if (!first) return undefined;
    if (first.seq === seq) {
      const more = this.morePending;
      this.firstPending = more?.shift();
      if (more?.length === 0) this.morePending = undefined;
      return first;
    }
    const more = this.morePending;
    const i = more ? more.findIndex((r) => r.seq === seq) : -1;
    if (i < 0) return undefined;
    const [res] = more!.splice(i, 1);
    if (more!.length === 0) this.morePending = undefined;
    return res;
  }

  get wildcard(): boolean {
    return this.legacyWildcard || this.explicitWildcard;
  }

  inScope(name: string): boolean {
    return this.wildcard || this.subscribed.has(name);
  }

  /**
   * A first wildcard subscription is answered even when it matches nothing: Envoy's initial fetch
   * waits for that response before it finishes initialising.
   */
  get owesInitialResponse(): boolean {
    return this.wildcard && !this.answered;
  }

  /**
   * Entries every name of which this stream wants under its current subscription: entries
   * published as a change of them (same names) need no check by name, which would read the
   * subscription Set, cold, on every push to thousands of streams.
   */
  private scopeCovers: TypeEntries | undefined;

  /** The entries this stream wants, sorted by name (may be `entries.sorted`, shared). */
  desired(entries: TypeEntries): readonly CacheEntry[] {
    const sorted = entries.sorted;
    const wanted = this.inScopeOf(sorted);
    if (wanted === sorted) this.scopeCovers = entries;
    return wanted;
  }

  /**
   * Of `changed`, the entries of `entries` that differ from `from`, a Map with the same names
   * (see changedSince), those this stream wants.
   */
  changedInScope(
    entries: TypeEntries,
    from: TypeEntries,
    changed: readonly CacheEntry[],
  ): readonly CacheEntry[] {
    if (this.scopeCovers !== from) return this.inScopeOf(changed);
    this.scopeCovers = entries;
    return changed;
  }

  /** Those of `entries` this stream wants (the same array when it wants all of them). */
  inScopeOf(entries: readonly CacheEntry[]): readonly CacheEntry[] {
    if (this.wildcard) return entries;
    const wanted = entries.filter((e) => this.subscribed.has(e.name));
    return wanted.length === entries.length ? entries : wanted;
  }

  /**
   * Of `desired`, what to send: forced resources, and those whose version the client was not sent,
   * unless it rejected that very version (rule 5: never re-send NACKed content).
   */
  unsent(desired: readonly CacheEntry[]): CacheEntry[] {
    const { forced, nacked } = this;
    return desired.filter((e) => {
      if (forced?.has(e.name)) return true;
      if (this.sent.get(e.name) === e.version) return false;
      return nacked?.get(e.name)?.version !== e.version;
    });
  }

  /** Sends `name` at the next push even if the client holds its version. */
  force(name: string): void {
    (this.forced ??= new Set()).add(name);
  }

  /** Delta: `name` is subscribed and does not exist (answered with its removal). */
  missing(name: string): void {
    (this.notFound ??= new Set()).add(name);
  }

  /** `name` was sent: it is no longer forced or reported missing. */
  written(name: string): void {
    if (this.forced?.delete(name) && this.forced.size === 0) this.forced = undefined;
    this.removalWritten(name);
  }

  /** Delta: the removal of `name` was sent: it is no longer reported missing (a force stays). */
  removalWritten(name: string): void {
    if (this.notFound?.delete(name) && this.notFound.size === 0) this.notFound = undefined;
  }

  /**
   * SotW: the request's resource_names replace the subscription. An empty list is a wildcard only
   * while no explicit name was ever asked for (legacy wildcard). Returns the newly added names.
   */
  applySotwNames(names: readonly string[]): string[] {
    this.scopeCovers = undefined;
    const explicit = names.filter((n) => n !== '*');
    const wasFirst = !this.requested;
    this.requested = true;
    this.legacyWildcard = names.length === 0 && (wasFirst || this.legacyWildcard);
    this.explicitWildcard = names.includes('*');
    const next = new Set(explicit);
    for (const old of [...this.subscribed]) if (!next.has(old)) this.forget(old);
    return this.addNames(explicit);
  }

  /**
   * SotW: whether `applySotwNames(names)` would leave the subscription as it is (a request after
   * the first).
   */
  sameSotwNames(names: readonly string[]): boolean {
    if (names.length === 0) return !this.explicitWildcard && this.subscribed.size === 0;
    if (this.legacyWildcard || names.includes('*') !== this.explicitWildcard) return false;
    const explicit = new Set(names);
    explicit.delete('*');
    if (explicit.size !== this.subscribed.size) return false;
    for (const name of explicit) if (!this.subscribed.has(name)) return false;
    return true;
  }

  /** Delta: subscribe / unsubscribe lists; an empty first request is a legacy wildcard. */
  applyDeltaChanges(subscribe: readonly string[], unsubscribe: readonly string[]): string[] {
    this.scopeCovers = undefined;
    const wasFirst = !this.requested;
    this.requested = true;
    if (wasFirst && subscribe.length === 0) this.legacyWildcard = true;
    if (subscribe.includes('*')) this.explicitWildcard = true;
    if (unsubscribe.includes('*')) {
      this.explicitWildcard = false;
      this.legacyWildcard = false;
    }
    const explicit = subscribe.filter((n) => n !== '*');
    if (explicit.length > 0) this.legacyWildcard = false;
    for (const name of unsubscribe) if (name !== '*') this.forget(name);
    return this.addNames(explicit);
  }

  private addNames(names: readonly string[]): string[] {
    const added: string[] = [];
    for (const name of names) {
      if (this.subscribed.has(name)) continue;
      this.subscribed.add(name);
      added.push(name);
    }
    return added;
  }

  private forget(name: string): void {
    this.subscribed.delete(name);
    if (this.wildcard) return;
    this.sent.delete(name);
    this.acked.delete(name);
    this.clearNack(name);
    this.written(name);
  }

  private clearNack(name: string): void {
    if (this.nacked?.delete(name) && this.nacked.size === 0) this.nacked = undefined;
  }

  onAck(res: SentResponse): void {
    if (res.fullState) this.acked.clear();
    // An ACK clears the resource's error state (envoy.admin.v3.UpdateFailureState: cleared after
    // the next successful update).
    for (const { name, version } of res.resources) {
      this.acked.set(name, version);
      if (this.nacked) this.clearNack(name);
    }
    for (const name of res.removed) this.acked.delete(name);
    if (res.versionInfo) this.ackedVersionInfo = res.versionInfo;
  }

  onNack(res: SentResponse, message: string): NackRecord {
    const record = { version: '', message, nonce: res.nonce, at: new Date() };
    if (res.resources.length > 0) {
      const nacked = (this.nacked ??= new Map());
      for (const { name, version } of res.resources) nacked.set(name, { ...record, version });
    }
    this.lastNack = { ...record, version: res.versionInfo };
    return this.lastNack;
  }

  /** A copy of what status readers see of this type (see TypeStatus). */
  status(): TypeStatus {
    return {
      typeUrl: this.typeUrl,
      requested: this.requested,
      wildcard: this.wildcard,
      subscribed: new Set(this.subscribed),
      sent: new Map(this.sent),
      acked: new Map(this.acked),
      nacked: new Map(this.nacked),
      lastNack: this.lastNack,
      lastNonce: this.lastNonce,
      sentVersionInfo: this.sentVersionInfo,
      ackedVersionInfo: this.ackedVersionInfo,
      pending: this.outstandingCount,
    };
  }
}
