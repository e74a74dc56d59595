import { IsthmusError } from '../errors.js';
import type { Logger } from '../log.js';
import { rootSpiffeId } from '../mesh/names.js';
import { ConcurrencyLimit } from './concurrency-limit.js';
import type { Leaf, LeafIdentity } from './types.js';

/** Why a CA of `trustDomain` must not sign `identity`, or undefined when it may. */
export function leafOutsideTrustDomain(
  trustDomain: string,
  identity: LeafIdentity,
): IsthmusError | undefined {
  const prefix = `${rootSpiffeId(trustDomain)}/`;
  if (identity.spiffeId.startsWith(prefix) && identity.spiffeId.length > prefix.length) return;
  return new IsthmusError(
    'invalid_argument',
    `leaf identity ${identity.spiffeId} is not in this CA's trust domain ${trustDomain}`,
    'spiffeId',
  );
}

export interface LeafCacheDeps {
  /** Issues a leaf under the active root. */
  issue(identity: LeafIdentity): Promise<Leaf>;
  activeRootId(): string;
  now(): number;
  readonly ttlMs: number;
  /** Called when a leaf replaces an earlier one for the same identity. */
  onRenewed(leaf: Leaf): void;
  /**
   * Whether anything still uses the identity, asked when its leaf is due for renewal or
   * re-issuance: an unused identity is forgotten instead (the next `get` issues it anew), so
   * services that came and went do not keep being renewed. Absent: every identity is kept.
   */
  inUse?(identity: LeafIdentity): boolean;
  /** Issuances under way at once (default `defaultMaxIssuing`); the rest wait their turn. */
  readonly maxIssuing?: number;
  readonly logger: Logger;
}

interface Entry {
  readonly key: string;
  readonly identity: LeafIdentity;
  leaf?: Leaf;
  issuedAt: number;
  pending?: Promise<Leaf> | undefined;
  timer?: NodeJS.Timeout | undefined;
}

/**
 * Renew when this fraction of a leaf's lifetime has passed (72 h leaves: after ~43 h, 29 h early).
 */
export const renewAfterFraction = 0.6;
/**
 * Leaves issued at once. Key generation and signing run on libuv's thread pool, but building the
 * certificate (@peculiar/x509's ASN.1) is ~1.5 ms of JavaScript per leaf: two at a time keep both
 * cores of a small machine busy without queueing tens of milliseconds of it between two xDS
 * messages (bench/leaf-issuance measured 1, 2, 4 and 8).
 */
export const defaultMaxIssuing = 2;
/** setTimeout's largest delay; longer waits are taken in steps. */
const maxTimerMs = 2 ** 31 - 1;

/** A holder has one leaf at a time; the server's own leaves are one per SPIFFE ID and DNS SANs. */
const entryKey = (id: LeafIdentity): string =>
  id.holder !== undefined
    ? `holder ${id.holder}`
    : `identity ${id.spiffeId}|${[...(id.dnsSans ?? [])].sort().join(',')}`;

const sameIdentity = (a: LeafIdentity, b: LeafIdentity): boolean =>
  a.spiffeId === b.spiffeId &&
  [...(a.dnsSans ?? [])].sort().join(',') === [...(b.dnsSans ?? [])].sort().join(',');

/**
 * The current leaf per holder (a proxy instance) or, for the server's own leaves, per identity:
 * issued on first use, then kept fresh by one unref'd timer per entry. Concurrent requests for an
 * entry share one issuance, and at most `maxIssuing` issuances run at once. A leaf is current
 * while it was signed by the active root and its renewal time has not come.
 */
export class LeafCache {
  private readonly entries = new Map<string, Entry>();
  private readonly issuing: ConcurrencyLimit;
  private closed = false;

  constructor(private readonly deps: LeafCacheDeps) {
    this.issuing = new ConcurrencyLimit(deps.maxIssuing ?? defaultMaxIssuing);
  }

  get ttlMs(): number {
    return this.deps.ttlMs;
  }

  async get(identity: LeafIdentity): Promise<Leaf> {
    const key = entryKey(identity);
    let entry = this.entries.get(key);
    // A holder whose identity changed (its sidecar now fronts another service) starts afresh.
    if (entry && !sameIdentity(entry.identity, identity)) entry = this.drop(entry);
    if (!entry) this.entries.set(key, (entry = { key, identity, issuedAt: 0 }));
    if (entry.pending) return entry.pending;
    if (entry.leaf && this.isCurrent(entry)) return entry.leaf;
    return this.refresh(entry);
  }

  /** Drops a holder's leaf for good (CertificateAuthority.release). */
  release(holder: string): void {
    const entry = this.entries.get(entryKey({ spiffeId: '', holder }));
    if (!entry) return;
    this.drop(entry);
    this.deps.logger.debug(
      { holder, spiffeId: entry.identity.spiffeId },
      'leaf certificate dropped: its holder is gone',
    );
  }

  /** Leaves held (tests, benchmarks). */
  get size(): number {
    return this.entries.size;
  }

  /** Re-issues every cached leaf not signed by the active root (rotation phase 2). */
  async reissueAll(): Promise<void> {
    const active = this.deps.activeRootId();
    await Promise.all(
      [...this.entries.values()].map(async (entry) => {
        if (entry.pending) await entry.pending.catch(() => undefined);
        if (!entry.leaf || entry.leaf.rootId === active || !this.holds(entry)) return;
        if (this.forgetUnused(entry)) return;
        await this.refresh(entry);
      }),
    );
  }

  close(): void {
    this.closed = true;
    for (const entry of this.entries.values()) clearTimeout(entry.timer);
    this.entries.clear();
  }

  private isCurrent(entry: Entry): boolean {
    return entry.leaf?.rootId === this.deps.activeRootId() && this.deps.now() < this.renewAt(entry);
  }

  private renewAt(entry: Entry): number {
    return entry.issuedAt + renewAfterFraction * this.deps.ttlMs;
  }

  /** Whether the entry is still the cache's (not dropped, released or replaced). */
  private holds(entry: Entry): boolean {
    return this.entries.get(entry.key) === entry;
  }

  /** Forgets an entry: no more renewals, and an issuance under way is not kept. */
  private drop(entry: Entry): undefined {
    clearTimeout(entry.timer);
    if (this.holds(entry)) this.entries.delete(entry.key);
    return undefined;
  }

  private refresh(entry: Entry): Promise<Leaf> {
    entry.pending ??= this.issueFor(entry).finally(() => (entry.pending = undefined));
    return entry.pending;
  }

  private async issueFor(entry: Entry): Promise<Leaf> {
    let issuedAt = 0;
    let leaf: Leaf;
    try {
      leaf = await this.issuing.run(() => {
        // Its lifetime starts when it is signed, not when it joined the queue.
        issuedAt = this.deps.now();
        return this.deps.issue(entry.identity);
      });
    } catch (err) {
      // A first issuance that failed leaves nothing behind; the caller sees the error.
      if (!entry.leaf) this.drop(entry);
      throw err;
    }
    // Released or replaced meanwhile: whoever asked gets it, but it is not kept or renewed.
    if (this.closed || !this.holds(entry)) return leaf;
    const replaced = entry.leaf !== undefined;
    entry.leaf = leaf;
    entry.issuedAt = issuedAt;
    this.schedule(entry, this.renewAt(entry) - this.deps.now());
    this.deps.logger.debug(
      {
        spiffeId: leaf.spiffeId,
        holder: leaf.holder,
        serial: leaf.serial,
        rootId: leaf.rootId,
        notAfter: leaf.notAfter,
      },
      'leaf certificate issued',
    );
    if (replaced) this.deps.onRenewed(leaf);
    return leaf;
  }

  /** Drops the entry if nothing uses its identity any more (see `inUse`); true if it did. */
  private forgetUnused(entry: Entry): boolean {
    if (!this.deps.inUse || this.deps.inUse(entry.identity) || entry.pending) return false;
    this.drop(entry);
    this.deps.logger.debug(
      { spiffeId: entry.identity.spiffeId, holder: entry.identity.holder },
      'leaf certificate not renewed: nothing uses its identity any more',
    );
    return true;
  }

  private schedule(entry: Entry, delayMs: number): void {
    clearTimeout(entry.timer);
    entry.timer = setTimeout(() => this.onTimer(entry), Math.min(Math.max(0, delayMs), maxTimerMs));
    entry.timer.unref();
  }

  private onTimer(entry: Entry): void {
    if (this.closed || !entry.leaf || !this.holds(entry)) return;
    const wait = this.renewAt(entry) - this.deps.now();
    if (wait > 0 && entry.leaf.rootId === this.deps.activeRootId())
      return this.schedule(entry, wait);
    if (this.forgetUnused(entry)) return;
    this.refresh(entry).catch((err: unknown) => {
      // Keep the current leaf (still valid for 40% of its life) and try again soon.
      const retryMs = Math.min(30_000, Math.max(1_000, this.deps.ttlMs / 50));
      this.deps.logger.error(
        { err, spiffeId: entry.identity.spiffeId, holder: entry.identity.holder, retryMs },
        'leaf certificate renewal failed; retrying',
      );
      if (!this.closed && this.holds(entry)) this.schedule(entry, retryMs);
    });
  }
}
