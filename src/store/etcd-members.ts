import type { Etcd3, Lease } from 'etcd3';
import type { Logger } from '../log.js';
import type { Member, Membership, Store } from './store.js';

/** Where each server announces itself, under the store's prefix. */
export const membersPrefix = 'members/';

/**
 * The servers sharing one etcd prefix (docs/architecture.md §1 "Membership", issue 15). Each server
 * puts `<prefix>members/<name>` under a lease of its own, kept alive while it runs: a clean stop
 * revokes the lease (the key goes at once), a crash or a partition lets etcd expire it
 * `ttlSeconds` after the last keep-alive. A lost lease is granted again and the key put again.
 *
 * Separate from the election's lease on purpose: a server that steps down as leader revokes that
 * lease, and must not vanish from the member list meanwhile.
 *
 * The list follows the store's own watch of the prefix (expiries arrive as deletes); on every
 * change under `members/` it is read again whole, one read at a time, so it never keeps a member
 * a delete raced past.
 */
export class EtcdMembers implements Membership {
  private readonly listeners = new Set<() => void>();
  private known: readonly Member[] = [];
  private lease: Lease | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private unwatch: (() => void) | undefined;
  private refreshing: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly client: Etcd3,
    private readonly store: Pick<Store, 'list' | 'watch'>,
    private readonly key: string,
    private readonly self: Member,
    private readonly ttlSeconds: number,
    private readonly logger: Logger,
  ) {}

  members(): readonly Member[] {
    // This server is a member while it runs, even before its key is back after a lost lease.
    const others = this.known.filter((m) => m.name !== this.self.name);
    return [...others, this.self].sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  subscribe(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  start(): void {
    this.unwatch = this.store.watch(membersPrefix, () => this.refresh());
    this.refresh();
    void this.announce();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.unwatch?.();
    // Revoking deletes the key at once: the others see this server leave without waiting the TTL.
    await this.lease?.revoke().catch(() => undefined);
  }

  private refresh(): void {
    this.refreshing = this.refreshing.then(async () => {
      if (this.closed) return;
      try {
        const kvs = await this.store.list(membersPrefix);
        this.known = kvs.map((kv) => ({
          name: kv.key.slice(membersPrefix.length),
          value: kv.value,
        }));
        this.notify();
      } catch (err) {
        // etcd unreachable: keep the last list; the watch's next event reads again.
        this.logger.debug({ error: (err as Error).message }, 'member list not read');
      }
    });
  }

  /** Puts this server's key under a fresh lease; a lost lease starts over. */
  private async announce(): Promise<void> {
    if (this.closed) return;
    const lease = this.client.lease(this.ttlSeconds, { autoKeepAlive: true });
    lease.on('lost', (err) => {
      if (this.lease !== lease) return;
      this.lease = undefined;
      this.logger.warn({ error: err.message }, 'membership lease lost; announcing again');
      this.retryLater();
    });
    this.lease = lease;
    try {
      await lease.put(this.key).value(JSON.stringify({ v: this.self.value }));
      if (this.closed) await lease.revoke().catch(() => undefined);
    } catch (err) {
      if (this.lease === lease) this.lease = undefined;
      void lease.revoke().catch(() => undefined);
      this.logger.debug({ error: (err as Error).message }, 'announcing this server failed');
      this.retryLater();
    }
  }

  private retryLater(): void {
    if (this.closed) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => void this.announce(), 500).unref();
  }

  private notify(): void {
    for (const fn of [...this.listeners]) {
      try {
        fn();
      } catch (err) {
        this.logger.error({ err }, 'membership listener threw');
      }
    }
  }
}
