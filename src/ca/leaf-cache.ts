import type { Logger } from '../log.js';
import type { Leaf, LeafIdentity } from './types.js';

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
  readonly logger: Logger;
}

interface Entry {
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
/** setTimeout's largest delay; longer waits are taken in steps. */
const maxTimerMs = 2 ** 31 - 1;

const identityKey = (id: LeafIdentity): string =>
  `${id.spiffeId}|${[...(id.dnsSans ?? [])].sort().join(',')}`;

/**
 * The current leaf per identity: issued on first use, then kept fresh by one unref'd timer per
 * identity. Concurrent requests for an identity share one issuance. A leaf is current while it was
 * signed by the active root and its renewal time has not come.
 */
export class LeafCache {
  private readonly entries = new Map<string, Entry>();
  private closed = false;

  constructor(private readonly deps: LeafCacheDeps) {}

  get ttlMs(): number {
    return this.deps.ttlMs;
  }

  async get(identity: LeafIdentity): Promise<Leaf> {
    const key = identityKey(identity);
    let entry = this.entries.get(key);
    if (!entry) this.entries.set(key, (entry = { identity, issuedAt: 0 }));
    if (entry.pending) return entry.pending;
    if (entry.leaf && this.isCurrent(entry)) return entry.leaf;
    return this.refresh(entry, key);
  }

  /** Re-issues every cached leaf not signed by the active root (rotation phase 2). */
  async reissueAll(): Promise<void> {
    const active = this.deps.activeRootId();
    await Promise.all(
      [...this.entries].map(async ([key, entry]) => {
        if (entry.pending) await entry.pending.catch(() => undefined);
        if (!entry.leaf || entry.leaf.rootId === active) return;
        if (this.forgetUnused(entry, key)) return;
        await this.refresh(entry, key);
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

  private refresh(entry: Entry, key: string): Promise<Leaf> {
    entry.pending ??= this.issueFor(entry, key).finally(() => (entry.pending = undefined));
    return entry.pending;
  }

  private async issueFor(entry: Entry, key: string): Promise<Leaf> {
    const issuedAt = this.deps.now();
    let leaf: Leaf;
    try {
      leaf = await this.deps.issue(entry.identity);
    } catch (err) {
      // A first issuance that failed leaves nothing behind; the caller sees the error.
      if (!entry.leaf) this.entries.delete(key);
      throw err;
    }
    if (this.closed) return leaf;
    const replaced = entry.leaf !== undefined;
    entry.leaf = leaf;
    entry.issuedAt = issuedAt;
    this.schedule(entry, this.renewAt(entry) - this.deps.now());
    this.deps.logger.debug(
      {
        spiffeId: leaf.spiffeId,
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
  private forgetUnused(entry: Entry, key: string): boolean {
    if (!this.deps.inUse || this.deps.inUse(entry.identity) || entry.pending) return false;
    clearTimeout(entry.timer);
    this.entries.delete(key);
    this.deps.logger.debug(
      { spiffeId: entry.identity.spiffeId },
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
    if (this.closed || !entry.leaf) return;
    const key = identityKey(entry.identity);
    if (this.entries.get(key) !== entry) return;
    const wait = this.renewAt(entry) - this.deps.now();
    if (wait > 0 && entry.leaf.rootId === this.deps.activeRootId())
      return this.schedule(entry, wait);
    if (this.forgetUnused(entry, key)) return;
    this.refresh(entry, key).catch((err: unknown) => {
      // Keep the current leaf (still valid for 40% of its life) and try again soon.
      const retryMs = Math.min(30_000, Math.max(1_000, this.deps.ttlMs / 50));
      this.deps.logger.error(
        { err, spiffeId: entry.identity.spiffeId, retryMs },
        'leaf certificate renewal failed; retrying',
      );
      if (!this.closed) this.schedule(entry, retryMs);
    });
  }
}
