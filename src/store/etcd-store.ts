import { ConstantBackoff, handleWhen, noop, retry } from 'cockatiel';
import { Etcd3, EtcdError, type ICompare, type IOptions, type Watcher as EtcdWatcher } from 'etcd3';
import { IsthmusError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import { EtcdElection } from './etcd-election.js';
import { neverSent } from './etcd-errors.js';
import { EtcdMembers, membersPrefix } from './etcd-members.js';
import type {
  JsonValue,
  KeyValue,
  Leadership,
  Membership,
  Store,
  StoreEvent,
  StoreTxn,
  TxnOptions,
} from './store.js';
import {
  type PendingWrites,
  SerialQueue,
  Watchers,
  checkKey,
  copyJson,
  overlay,
} from './store-parts.js';

/**
 * The store on etcd (`--store etcd`, docs/architecture.md "Store"), for clusters that run several
 * isthmus servers. Each key lives at `<prefix><key>` holding `{"v": value}` as JSON; a key's
 * revision is etcd's `mod_revision`, and the store revision is etcd's: one per committed
 * transaction, the same contract as the embedded LMDB store.
 *
 * - Reads are linearizable (etcd's default), so a server reads what any server wrote before.
 * - `txn` is optimistic: this server's transactions run one at a time, each against a snapshot at
 *   one revision, recording what it read; the commit is one etcd Txn that succeeds only if none of
 *   that changed (each key read at its mod_revision or still absent, each listed prefix without a
 *   newer key). On a conflict the function runs again after a short jittered pause, so two
 *   servers' read-modify-writes serialize like one server's.
 * - One etcd watch over the whole prefix feeds every local watcher, in revision order, with the
 *   changes of every server. This server's own commits are delivered as soon as they commit (once
 *   every earlier revision has been delivered), so a caller sees its write's event before its
 *   `txn` resolves, as with LMDB; the watch's copy of them is skipped by revision.
 * - Any number of servers share a prefix. A watch that broke resumes from the revision after the
 *   last one delivered (nothing missed, nothing replayed); one whose revision etcd compacted away
 *   reloads the prefix and delivers the difference from what this server last saw (it keeps every
 *   key's mod_revision for that) as ordinary events.
 * - `campaign` elects one leader among the servers (etcd-election.ts); `txn(fn, {asLeader})`
 *   commits only while this server's leader key is held under its lease.
 */
export interface EtcdStoreOptions {
  readonly endpoints: readonly string[];
  /** Every key is stored under this prefix (default `isthmus/`): several clusters can share etcd. */
  readonly prefix?: string;
  readonly auth?: { readonly username: string; readonly password: string };
  readonly tls?: {
    readonly caPem?: string;
    readonly certPem?: string;
    readonly keyPem?: string;
  };
  /** Deadline of each etcd call (default 5 s): etcd unreachable is an error, not a hang. */
  readonly callTimeoutMs?: number;
  /** TTL of the leader's lease (default 5 s): a dead leader is replaced within about this. */
  readonly leaderTtlSeconds?: number;
  readonly logger?: Logger;
}

/** How many times a transaction runs before a conflict is reported (each retry reads anew). */
const maxAttempts = 20;

/** Opens the store and its watch; fails with a clear error when etcd does not answer. */
export async function openEtcdStore(opts: EtcdStoreOptions): Promise<Store> {
  const prefix = opts.prefix ?? 'isthmus/';
  const callTimeoutMs = opts.callTimeoutMs ?? 5_000;
  const options: IOptions = {
    hosts: [...opts.endpoints],
    ...(opts.auth ? { auth: { username: opts.auth.username, password: opts.auth.password } } : {}),
    ...(opts.tls
      ? {
          credentials: {
            rootCertificate: Buffer.from(opts.tls.caPem ?? ''),
            ...(opts.tls.certPem ? { certChain: Buffer.from(opts.tls.certPem) } : {}),
            ...(opts.tls.keyPem ? { privateKey: Buffer.from(opts.tls.keyPem) } : {}),
          },
        }
      : {}),
    // Streams (the watch, lease keep-alives) live as long as the store: no deadline on them.
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + callTimeoutMs }),
    // The store reports failures to its callers (HTTP 503) at once: no retries of writes behind
    // their back, and no circuit breaker that keeps failing calls after etcd is back. The one
    // retry: a call that found no connection to the member it picked was never sent, so it goes
    // to the next member (one member of three down must not fail a third of the calls).
    faultHandling: {
      host: () => noop,
      global:
        opts.endpoints.length > 1
          ? retry(handleWhen(neverSent), {
              maxAttempts: opts.endpoints.length - 1,
              backoff: new ConstantBackoff(0),
            })
          : noop,
    },
  };
  const client = new Etcd3(options);
  const logger = opts.logger ?? silentLogger();
  try {
    const head = await client.kv.range({ key: Buffer.from(prefix), keys_only: true, limit: 1 });
    const store = new EtcdStore(client, prefix, logger, opts.leaderTtlSeconds ?? 5);
    await store.load(Number(head.header.revision ?? 0));
    await store.startWatch();
    logger.info(
      { endpoints: opts.endpoints, prefix, revision: Number(head.header.revision ?? 0) },
      'store opened on etcd',
    );
    return store;
  } catch (err) {
    client.close();
    if (err instanceof IsthmusError) throw err;
    throw new IsthmusError(
      'unavailable',
      `cannot reach etcd at ${opts.endpoints.join(', ')}: ${(err as Error).message} (check --etcd-endpoints and that etcd is running)`,
    );
  }
}

/** What a transaction read, to be checked unchanged at commit. */
interface ReadSet {
  /** Key → the mod_revision it had (0: absent). */
  readonly keys: Map<string, number>;
  readonly prefixes: Set<string>;
}

class EtcdStore implements Store {
  /** This server's transactions, one at a time (as LMDB's): conflicts come only from others. */
  private readonly queue = new SerialQueue();
  private readonly watchers: Watchers;
  private watcher: EtcdWatcher | undefined;
  /** The highest revision whose events every local watcher has had. */
  private delivered = 0;
  /** Every key under the prefix this server has seen, with its mod_revision (for a reload). */
  private readonly known = new Map<string, number>();
  /** Events of this server's commits that wait for earlier revisions to be delivered. */
  private readonly ownCommits = new Map<number, StoreEvent[]>();
  private readonly waiters: { revision: number; resolve: () => void }[] = [];
  private election: EtcdElection | undefined;
  private membership: EtcdMembers | undefined;
  /** Why etcd calls or the watch fail now; undefined once they work again. */
  private failure: string | undefined;
  private closed = false;

  constructor(
    private readonly client: Etcd3,
    private readonly prefix: string,
    private readonly logger: Logger,
    private readonly leaderTtlSeconds: number,
  ) {
    this.watchers = new Watchers(logger);
  }

  /** Records what is under the prefix at `revision` (the watch starts after it). */
  async load(revision: number): Promise<void> {
    const res = await this.client.kv.range({
      key: this.full(''),
      range_end: rangeEnd(this.full('')),
      keys_only: true,
      revision,
    });
    for (const kv of res.kvs)
      this.known.set(kv.key.toString('utf8').slice(this.prefix.length), Number(kv.mod_revision));
    this.delivered = revision;
  }

  async get<V extends JsonValue = JsonValue>(key: string): Promise<V | undefined> {
    this.assertOpen();
    const res = await this.call(() => this.client.kv.range({ key: this.full(key) }));
    const kv = res.kvs[0];
    return kv ? (decode(key, kv.value) as V) : undefined;
  }

  async list<V extends JsonValue = JsonValue>(prefix: string): Promise<KeyValue<V>[]> {
    this.assertOpen();
    return (await this.rangeOf(prefix)).kvs as KeyValue<V>[];
  }

  put(key: string, value: JsonValue): Promise<void> {
    return this.txn(async (tx) => tx.put(key, value));
  }

  delete(key: string): Promise<boolean> {
    return this.txn(async (tx) => {
      const existed = (await tx.get(key)) !== undefined;
      tx.delete(key);
      return existed;
    });
  }

  async txn<T>(fn: (tx: StoreTxn) => Promise<T>, opts: TxnOptions = {}): Promise<T> {
    this.assertOpen();
    return this.queue.run(() => this.attempt(fn, opts));
  }

  /** Runs `fn` until its commit finds nothing it read changed, backing off between conflicts. */
  private async attempt<T>(fn: (tx: StoreTxn) => Promise<T>, opts: TxnOptions): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const at = await this.revision();
      const reads: ReadSet = { keys: new Map(), prefixes: new Set() };
      const writes: PendingWrites = new Map();
      const result = await fn(this.txnView(at, reads, writes));
      if (writes.size === 0) return result;
      if (await this.commit(at, reads, writes, opts)) return result;
      if (attempt >= maxAttempts)
        throw new IsthmusError(
          'unavailable',
          `store transaction conflicted ${maxAttempts} times with other servers' writes; try again`,
        );
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 5 * attempt));
    }
  }

  watch(prefix: string, onEvent: (event: StoreEvent) => void): () => void {
    return this.watchers.add(prefix, onEvent);
  }

  /**
   * Waits for the newest write under the prefix (etcd's revision also counts other prefixes and
   * the leader key, which this watch never sees). A delete leaves no key to find: one not yet
   * delivered is not waited for.
   */
  async caughtUp(): Promise<void> {
    this.assertOpen();
    const start = this.full('');
    const newest = await this.call(() =>
      this.client.kv.range({
        key: start,
        range_end: rangeEnd(start),
        keys_only: true,
        limit: 1,
        sort_order: 'Descend',
        sort_target: 'Mod',
      }),
    );
    const revision = Number(newest.kvs[0]?.mod_revision ?? 0);
    if (this.delivered >= revision) return;
    let timer: NodeJS.Timeout | undefined;
    const waiter: { revision: number; resolve: () => void } = { revision, resolve: () => {} };
    await Promise.race([
      new Promise<void>((resolve) => {
        waiter.resolve = resolve;
        this.waiters.push(waiter);
      }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          const i = this.waiters.indexOf(waiter);
          if (i >= 0) this.waiters.splice(i, 1);
          reject(
            new IsthmusError(
              'unavailable',
              `etcd: this server's watch is behind (at revision ${this.delivered} of ${revision})`,
            ),
          );
        }, 10_000);
      }),
    ]).finally(() => clearTimeout(timer));
  }

  campaign(value: string): Leadership {
    if (!this.election) {
      const key = Buffer.from(`${this.prefix.replace(/\/$/, '')}.leader`);
      const election = new EtcdElection(
        this.client,
        key,
        value,
        this.leaderTtlSeconds,
        this.logger.child({ component: 'election' }),
      );
      this.election = election;
      election.start();
    }
    return this.election;
  }

  announce(name: string, value: JsonValue): Membership {
    if (!this.membership) {
      const membership = new EtcdMembers(
        this.client,
        this,
        this.prefix + membersPrefix + checkKey(name),
        { name, value: copyJson(name, value) },
        this.leaderTtlSeconds,
        this.logger.child({ component: 'members' }),
      );
      this.membership = membership;
      membership.start();
    }
    return this.membership;
  }

  problem(): string | undefined {
    return this.failure;
  }

  async revision(): Promise<number> {
    this.assertOpen();
    const head = await this.call(() =>
      this.client.kv.range({ key: this.full(''), keys_only: true, limit: 1 }),
    );
    return Number(head.header.revision ?? 0);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.watchers.clear();
    await this.watcher?.cancel().catch(() => undefined);
    // Revoking the leader's lease hands leadership over at once instead of after its TTL.
    await this.election?.close();
    await this.membership?.close();
    this.client.close();
  }

  /** Starts the one etcd watch over the prefix, after the last revision delivered. */
  async startWatch(): Promise<void> {
    const watcher = await this.client
      .watch()
      .prefix(this.prefix)
      .startRevision(String(this.delivered + 1))
      .create();
    watcher.on('data', (res) => {
      const byRevision = new Map<number, StoreEvent[]>();
      for (const e of res.events) {
        const key = e.kv.key.toString('utf8').slice(this.prefix.length);
        const revision = Number(e.kv.mod_revision);
        const event: StoreEvent =
          e.type === 'Delete'
            ? { kind: 'delete', key, revision }
            : { kind: 'put', key, value: decode(key, e.kv.value), revision };
        const list = byRevision.get(revision) ?? [];
        list.push(event);
        byRevision.set(revision, list);
      }
      for (const [revision, events] of [...byRevision].sort((a, b) => a[0] - b[0]))
        this.deliver(revision, events);
      // A watch response's header revision is the store's: nothing in between touched the prefix.
      this.advance(Number(res.header.revision ?? 0));
    });
    watcher.on('error', (err) => {
      if (this.closed) return;
      // etcd cancels a watch whose start revision it compacted away: reload and watch anew.
      this.logger.warn({ error: err.message }, 'etcd watch cancelled; reloading the prefix');
      void this.reload(watcher);
    });
    watcher.on('disconnected', (err) => {
      if (this.closed) return;
      this.failure = `etcd: ${err.message}`;
      this.logger.warn({ error: err.message }, 'etcd watch disconnected; resuming');
      // Resume right after what was delivered: the client would otherwise resume after the
      // revision of the reconnect, skipping catch-up events a second disconnect cut short.
      (watcher as unknown as { request: { start_revision: string } }).request.start_revision =
        String(this.delivered + 1);
    });
    watcher.on('connected', () => {
      this.failure = undefined;
    });
    this.watcher = watcher;
  }

  /**
   * After a compaction: reads the whole prefix at one revision, delivers the difference from what
   * this server knew as events (deletes, then puts in key order), and watches from there on.
   */
  private async reload(old: EtcdWatcher): Promise<void> {
    if (this.watcher !== old || this.closed) return;
    // etcd cancelled it already: the client dropped it, and cancelling again would wait forever.
    this.watcher = undefined;
    for (;;) {
      if (this.closed) return;
      try {
        const start = this.full('');
        const res = await this.client.kv.range({ key: start, range_end: rangeEnd(start) });
        const revision = Number(res.header.revision ?? 0);
        const seen = new Set<string>();
        const events: StoreEvent[] = [];
        for (const kv of res.kvs) {
          const key = kv.key.toString('utf8').slice(this.prefix.length);
          seen.add(key);
          if (this.known.get(key) === Number(kv.mod_revision)) continue;
          events.push({ kind: 'put', key, value: decode(key, kv.value), revision });
        }
        const deletes: StoreEvent[] = [...this.known.keys()]
          .filter((key) => !seen.has(key))
          .map((key) => ({ kind: 'delete', key, revision }));
        this.watchers.notify([...deletes, ...events]);
        for (const e of deletes) this.known.delete(e.key);
        for (const kv of res.kvs)
          this.known.set(
            kv.key.toString('utf8').slice(this.prefix.length),
            Number(kv.mod_revision),
          );
        this.advance(revision);
        await this.startWatch();
        return;
      } catch (err) {
        this.failure = `etcd: ${(err as Error).message}`;
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
  }

  private async commit(
    at: number,
    reads: ReadSet,
    writes: PendingWrites,
    opts: TxnOptions,
  ): Promise<boolean> {
    const fence = opts.asLeader ? this.leaderFence() : undefined;
    const compare: ICompare[] = fence
      ? [{ key: fence.key, target: 'Lease', result: 'Equal', lease: fence.leaseId }]
      : [];
    for (const [key, modRevision] of reads.keys) {
      compare.push({
        key: this.full(key),
        target: 'Mod' as const,
        result: 'Equal' as const,
        mod_revision: modRevision,
      });
    }
    for (const prefix of reads.prefixes) {
      compare.push({
        key: this.full(prefix),
        range_end: rangeEnd(this.full(prefix)),
        target: 'Mod' as const,
        result: 'Less' as const,
        mod_revision: at + 1,
      });
    }
    const success = [...writes].map(([key, value]) =>
      value === undefined
        ? { request_delete_range: { key: this.full(key) } }
        : {
            request_put: { key: this.full(key), value: Buffer.from(JSON.stringify({ v: value })) },
          },
    );
    const res = await this.call(() => this.client.kv.txn({ compare, success }));
    if (!res.succeeded) {
      if (fence && !(await this.stillHolds(fence))) throw notLeader('it lost its lease');
      return false;
    }
    const revision = Number(res.header.revision ?? 0);
    const events: StoreEvent[] = [];
    let i = 0;
    for (const [key, value] of writes) {
      const op = res.responses[i++];
      if (value !== undefined) events.push({ kind: 'put', key, value, revision });
      else if (Number(op?.response_delete_range?.deleted ?? 0) > 0)
        events.push({ kind: 'delete', key, revision });
    }
    if (events.length === 0) return true;
    // Deliver our own events once every earlier revision has been delivered (commit order).
    if (revision > this.delivered + 1) {
      this.ownCommits.set(revision, events);
      await new Promise<void>((resolve) => this.waiters.push({ revision: revision - 1, resolve }));
      if (this.delivered >= revision) return true;
      this.ownCommits.delete(revision);
    }
    this.deliver(revision, events);
    return true;
  }

  /** This server's leader key and lease, or why a leader-only write is refused. */
  private leaderFence(): { readonly key: Buffer; readonly leaseId: string } {
    if (!this.election) throw notLeader('it does not take part in the election');
    const fence = this.election.fence();
    if (!fence) throw notLeader(`the leader is ${this.election.leader() ?? 'not known yet'}`);
    return fence;
  }

  private async stillHolds(fence: { readonly key: Buffer; readonly leaseId: string }) {
    const res = await this.call(() => this.client.kv.range({ key: fence.key }));
    return res.kvs[0]?.lease === fence.leaseId;
  }

  /** Delivers one revision's events unless it was delivered already. */
  private deliver(revision: number, events: readonly StoreEvent[]): void {
    if (revision <= this.delivered) return;
    for (const e of events) {
      if (e.kind === 'put') this.known.set(e.key, e.revision);
      else this.known.delete(e.key);
    }
    this.watchers.notify(events);
    this.advance(revision);
  }

  private advance(revision: number): void {
    if (revision > this.delivered) this.delivered = revision;
    // Own commits now next in line go out, then waiting commits whose turn has come.
    for (let next = this.ownCommits.get(this.delivered + 1); next; ) {
      const revisionOfNext = this.delivered + 1;
      this.ownCommits.delete(revisionOfNext);
      this.deliver(revisionOfNext, next);
      next = this.ownCommits.get(this.delivered + 1);
    }
    for (let j = this.waiters.length - 1; j >= 0; j--) {
      const waiter = this.waiters[j]!;
      if (waiter.revision <= this.delivered) {
        this.waiters.splice(j, 1);
        waiter.resolve();
      }
    }
  }

  private txnView(at: number, reads: ReadSet, writes: PendingWrites): StoreTxn {
    const store = this;
    return {
      async get<V extends JsonValue = JsonValue>(key: string): Promise<V | undefined> {
        if (writes.has(key)) return writes.get(key) as V | undefined;
        const res = await store.call(() =>
          store.client.kv.range({ key: store.full(key), revision: at }),
        );
        const kv = res.kvs[0];
        reads.keys.set(key, kv ? Number(kv.mod_revision) : 0);
        return kv ? (decode(key, kv.value) as V) : undefined;
      },
      async list<V extends JsonValue = JsonValue>(prefix: string): Promise<KeyValue<V>[]> {
        const committed = (await store.rangeOf(prefix, at)).kvs;
        reads.prefixes.add(prefix);
        for (const kv of committed) reads.keys.set(kv.key, kv.revision);
        return overlay(committed, writes, prefix, at + 1) as KeyValue<V>[];
      },
      unchanged(prefix: string): void {
        reads.prefixes.add(prefix);
      },
      put(key: string, value: JsonValue): void {
        writes.set(checkKey(key), copyJson(key, value));
      },
      delete(key: string): void {
        writes.set(checkKey(key), undefined);
      },
    };
  }

  private async rangeOf(prefix: string, revision?: number): Promise<{ kvs: KeyValue[] }> {
    const start = this.full(prefix);
    const res = await this.call(() =>
      this.client.kv.range({
        key: start,
        range_end: rangeEnd(start),
        ...(revision === undefined ? {} : { revision }),
      }),
    );
    return {
      kvs: res.kvs.map((kv) => {
        const key = kv.key.toString('utf8').slice(this.prefix.length);
        return { key, value: decode(key, kv.value), revision: Number(kv.mod_revision) };
      }),
    };
  }

  private full(key: string): Buffer {
    return Buffer.from(this.prefix + key, 'utf8');
  }

  /** An etcd call; an unreachable etcd becomes `unavailable` (HTTP 503) naming etcd. */
  private async call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      const result = await fn();
      if (this.failure && this.watcher) this.failure = undefined;
      return result;
    } catch (err) {
      if (err instanceof IsthmusError) throw err;
      const message = err instanceof EtcdError || err instanceof Error ? err.message : String(err);
      this.failure = `etcd: ${message}`;
      throw new IsthmusError('unavailable', `etcd: ${message}`);
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new IsthmusError('unavailable', 'store on etcd is closed');
  }
}

function notLeader(why: string): IsthmusError {
  return new IsthmusError(
    'unavailable',
    `this server is not the cluster leader (${why}): only the leader makes this write`,
  );
}

/** The end of etcd's range of every key starting with `start` (its last byte plus one). */
function rangeEnd(start: Buffer): Buffer {
  const end = Buffer.from(start);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

function decode(key: string, value: Buffer): JsonValue {
  try {
    return (JSON.parse(value.toString('utf8')) as { v: JsonValue }).v;
  } catch {
    throw new IsthmusError('internal', `store value of ${key} in etcd is not isthmus JSON`);
  }
}
