import type { Etcd3, Lease, Watcher } from 'etcd3';
import type { Logger } from '../log.js';
import { neverSent } from './etcd-errors.js';
import type { Leadership } from './store.js';

/** How many members one keep-alive tries when those it picks have no connection. */
const keepAliveAttempts = 4;

/**
 * The leader election of the servers sharing one etcd prefix (docs/architecture.md "Store",
 * issue 15): one key, `<prefix>.leader`, created only if absent and held under the campaigning
 * server's lease. Whoever created it leads until its lease ends: on a clean stop the lease is
 * revoked (the key goes at once); on a crash or a partition etcd expires it `ttlSeconds` after
 * the last keep-alive, and the others, watching the key, race to create it again. So a handover
 * takes at most the TTL plus one watch event and one Txn.
 *
 * Two leaders cannot write at once: every leader-only commit compares the key's lease with this
 * server's in the same Txn (`fence`). A server also stops believing it leads once nine tenths of
 * `ttlSeconds` have passed since it sent the last keep-alive that etcd answered, before etcd can
 * expire the lease (etcd renewed it no earlier than that send, for the whole TTL), so even work
 * that writes nothing (holding peering streams) stops before another server may start it.
 *
 * Keep-alives go out every tenth of the TTL, each on its own short stream with a deadline, so a
 * keep-alive stuck on a dead etcd member or waiting out etcd's own Raft election does not hold up
 * the next one: losing etcd's Raft leader (an election of 1–2 s) does not move the leadership.
 */
export class EtcdElection implements Leadership {
  private readonly listeners = new Set<() => void>();
  private lease: Lease | undefined;
  private granting: Promise<string> | undefined;
  private leaseId: string | undefined;
  private leading = false;
  private leaderValue: string | undefined;
  private lastKeepAlive = 0;
  private watcher: Watcher | undefined;
  private keepAliveTimer: NodeJS.Timeout | undefined;
  private stepDownTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly client: Etcd3,
    readonly key: Buffer,
    private readonly value: string,
    private readonly ttlSeconds: number,
    private readonly logger: Logger,
  ) {}

  isLeader(): boolean {
    return this.leading && Date.now() - this.lastKeepAlive < this.stepDownMs();
  }

  leader(): string | undefined {
    return this.isLeader() ? this.value : this.leaderValue;
  }

  subscribe(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** The compare that fences a leader-only commit, or undefined when this server does not lead. */
  fence(): { readonly key: Buffer; readonly leaseId: string } | undefined {
    return this.isLeader() && this.leaseId ? { key: this.key, leaseId: this.leaseId } : undefined;
  }

  /** Watches the key, then campaigns; failures are retried in the background. */
  start(): void {
    void this.watchKey();
    void this.campaign();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.stepDownTimer);
    clearTimeout(this.retryTimer);
    this.setLeading(false);
    await this.watcher?.cancel().catch(() => undefined);
    // Revoking deletes the key at once: the next leader need not wait for the TTL.
    await this.dropLease()
      ?.revoke()
      .catch(() => undefined);
  }

  private async watchKey(): Promise<void> {
    try {
      const watcher = await this.client.watch().key(this.key).create();
      watcher.on('put', (kv) => {
        if (kv.lease !== this.leaseId) this.setLeaderValue(kv.value.toString('utf8'));
      });
      watcher.on('delete', () => {
        this.setLeaderValue(undefined);
        if (this.leading) this.lostLeadership('the leader key was deleted');
        void this.campaign();
      });
      // After a reconnect the key may have changed hands unseen: look again.
      watcher.on('connected', () => void this.campaign());
      this.watcher = watcher;
      if (this.closed) await watcher.cancel();
    } catch (err) {
      this.retryLater(`watch of the leader key failed: ${(err as Error).message}`, () =>
        this.watchKey(),
      );
    }
  }

  /** Creates the key under our lease if nobody holds it; otherwise learns who leads. */
  private async campaign(): Promise<void> {
    if (this.closed || this.leading) return;
    try {
      const leaseId = await this.ensureLease();
      const res = await this.client.kv.txn({
        compare: [{ key: this.key, target: 'Create', result: 'Equal', create_revision: 0 }],
        success: [
          { request_put: { key: this.key, value: Buffer.from(this.value), lease: leaseId } },
        ],
        failure: [{ request_range: { key: this.key } }],
      });
      if (this.closed) return;
      if (res.succeeded) {
        this.logger.info({ leader: this.value }, 'this server is now the cluster leader');
        this.setLeading(true);
        return;
      }
      const kv = res.responses[0]?.response_range?.kvs[0];
      if (kv?.lease === leaseId) return this.setLeading(true);
      this.setLeaderValue(kv?.value.toString('utf8'));
    } catch (err) {
      this.retryLater(`campaign failed: ${(err as Error).message}`, () => this.campaign());
    }
  }

  /** This server's lease, granted once however many campaigns ask for it at the same time. */
  private async ensureLease(): Promise<string> {
    if (this.lease && this.leaseId) return this.leaseId;
    this.granting ??= this.grantLease().finally(() => {
      this.granting = undefined;
    });
    return this.granting;
  }

  private async grantLease(): Promise<string> {
    const lease = this.client.lease(this.ttlSeconds, { autoKeepAlive: false });
    lease.on('lost', (err) => {
      if (this.lease !== lease) return;
      this.dropLease();
      if (this.leading) this.lostLeadership(`its etcd lease was lost (${err.message})`);
      this.retryLater('lease lost', () => this.campaign());
    });
    const asked = Date.now();
    const id = await lease.grant();
    if (this.closed) {
      void lease.revoke().catch(() => undefined);
      throw new Error('the election is closed');
    }
    this.lastKeepAlive = asked;
    this.lease = lease;
    this.leaseId = id;
    this.keepAliveTimer = setInterval(
      () => this.keepAlive(lease),
      (this.ttlSeconds * 1000) / 10,
    ).unref();
    return id;
  }

  /**
   * One keep-alive of `lease`. Its answer counts from when it was sent: etcd renewed the lease no
   * earlier. One that found no connection to the member it picked was never sent and goes to
   * another at once (a stream is not retried by the client's policy as a unary call is), so one
   * dead member of three does not fail every other keep-alive. A lease etcd no longer knows is
   * reported by the library as `lost`.
   */
  private keepAlive(lease: Lease, attemptsLeft = keepAliveAttempts): void {
    const sent = Date.now();
    lease.keepaliveOnce({ deadline: sent + this.ttlSeconds * 1000 }).then(
      () => {
        if (this.lease !== lease || sent <= this.lastKeepAlive) return;
        this.lastKeepAlive = sent;
        this.armStepDown();
      },
      (err: Error) => {
        if (neverSent(err) && attemptsLeft > 1 && this.lease === lease)
          return this.keepAlive(lease, attemptsLeft - 1);
        this.logger.debug({ reason: err.message }, 'etcd lease keep-alive failed');
      },
    );
  }

  /** Stops keeping this server's lease alive and forgets it; returns it for revoking. */
  private dropLease(): Lease | undefined {
    const lease = this.lease;
    clearInterval(this.keepAliveTimer);
    this.lease = undefined;
    this.leaseId = undefined;
    return lease;
  }

  private stepDownMs(): number {
    return (this.ttlSeconds * 9000) / 10;
  }

  /**
   * Steps down once the last answered keep-alive was sent nine tenths of the TTL ago (see the
   * class comment).
   */
  private armStepDown(): void {
    clearTimeout(this.stepDownTimer);
    if (!this.leading) return;
    const left = this.lastKeepAlive + this.stepDownMs() - Date.now();
    this.stepDownTimer = setTimeout(() => {
      if (this.leading && !this.isLeader())
        this.lostLeadership('no etcd lease keep-alive answered for nine tenths of the lease TTL');
    }, left + 10).unref();
  }

  private lostLeadership(why: string): void {
    this.logger.warn({ reason: why }, 'this server is no longer the cluster leader');
    this.setLeading(false);
    // The key may still be ours in etcd (a partition): drop the lease so it cannot come back.
    void this.dropLease()
      ?.revoke()
      .catch(() => undefined);
    this.retryLater('stepped down', () => this.campaign());
  }

  private setLeading(leading: boolean): void {
    if (this.leading === leading) return;
    this.leading = leading;
    if (leading) {
      this.leaderValue = this.value;
      this.armStepDown();
    }
    this.notify();
  }

  private setLeaderValue(value: string | undefined): void {
    if (this.leaderValue === value) return;
    this.leaderValue = value;
    this.notify();
  }

  private retryLater(why: string, fn: () => Promise<void>): void {
    if (this.closed) return;
    this.logger.debug({ reason: why }, 'leader election retry scheduled');
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => void fn(), 500).unref();
  }

  private notify(): void {
    for (const fn of [...this.listeners]) {
      try {
        fn();
      } catch (err) {
        this.logger.error({ err }, 'leadership listener threw');
      }
    }
  }
}
