import fs from 'node:fs';
import path from 'node:path';
import { open, type Database, type RootDatabase } from 'lmdb';
import { IsthmusError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import type {
  JsonValue,
  KeyValue,
  Leadership,
  Membership,
  Store,
  StoreEvent,
  StoreTxn,
} from './store.js';
import { type PendingWrites, Watchers, checkKey, copyJson, overlay } from './store-parts.js';

/**
 * The embedded store: one LMDB environment in `dir`, owned by exactly one isthmus server.
 *
 * - `kv` holds `{ r, v }` records (revision of the last write, value) under string keys; LMDB keeps
 *   them in UTF-8 byte order, which is the order `list` returns.
 * - `meta` holds the store revision, bumped in the same LMDB write transaction as the data, so it
 *   survives restarts and never goes backwards.
 * - Every transaction (and plain put/delete) runs one at a time, in submission order, so
 *   read-modify-writes never interleave. Commits are grouped (docs/architecture.md §1 "State"):
 *   the transactions submitted while a group commits run next, each over the writes of those
 *   before it, and are written in one LMDB transaction with one flush to disk. Each resolves only
 *   once its group is on disk; a group the disk refuses fails whole.
 *
 * LMDB locks the environment across processes, but a second process writing the same dir would
 * break serializability; the commit detects that (the revision moved under us) and fails loudly
 * instead of losing an update. Run one isthmus server per data dir.
 */
export async function openLmdbStore(
  dir: string,
  opts: { logger?: Logger; exclusive?: boolean } = {},
): Promise<Store> {
  prepareWritableDir(dir);
  restrictToOwner(dir, opts.logger);
  const realDir = fs.realpathSync(dir);
  if (openDirs.has(realDir)) {
    throw new IsthmusError(
      'failed_precondition',
      `store directory ${realDir} is already open in this process`,
    );
  }
  openDirs.add(realDir);
  let env: RootDatabase | undefined;
  try {
    // noSubdir: false, or LMDB treats a dir name containing '.' as a file name.
    env = open({ path: realDir, maxDbs: 4, noSubdir: false });
    if (opts.exclusive) refuseIfHeld(env, realDir);
    const store = new LmdbStore(realDir, env, opts.logger ?? silentLogger());
    opts.logger?.info({ dir: realDir, revision: store.currentRevision() }, 'store opened');
    return store;
  } catch (err) {
    openDirs.delete(realDir);
    await env?.close();
    throw err;
  }
}

/**
 * Fails when another live process has the environment open (`isthmus store copy` must not read a
 * store a server is still writing). LMDB records each process that read in its lock file's reader
 * table; `readerCheck` first clears the slots of processes that died (a server killed -9). Every
 * isthmus server reads its store when it starts, so a running one is always listed. Process ids
 * are those of this machine's (or container's) pid namespace.
 */
function refuseIfHeld(env: RootDatabase, dir: string): void {
  env.readerCheck();
  const pids = env
    .readerList()
    .split('\n')
    .slice(1)
    .map((line) => Number(line.trim().split(/\s+/)[0]))
    .filter((pid) => Number.isInteger(pid) && pid > 0 && pid !== process.pid);
  if (pids.length > 0)
    throw new IsthmusError(
      'failed_precondition',
      `store directory ${dir} is in use by process ${[...new Set(pids)].join(', ')} (an isthmus server?); stop it first`,
    );
}

/**
 * Directories with an open store in this process (LMDB must not be opened twice by one process).
 */
const openDirs = new Set<string>();

const revisionKey = 'revision';

interface StoredRecord {
  readonly r: number;
  readonly v: JsonValue;
}

/** A transaction waiting for its group. */
interface QueuedTxn {
  readonly fn: (tx: StoreTxn) => Promise<unknown>;
  readonly resolve: (value: unknown) => void;
  readonly reject: (err: unknown) => void;
}

/**
 * One group being written: the writes of its transactions so far (a later one's over an earlier
 * one's, with the revision each commits at), their events, and the revision they reach.
 */
interface Group {
  readonly writes: Map<string, StoredRecord | undefined>;
  readonly events: StoreEvent[];
  revision: number;
}

class LmdbStore implements Store {
  private readonly kv: Database<StoredRecord, string>;
  private readonly meta: Database<number, string>;
  private readonly watchers: Watchers;
  private waiting: QueuedTxn[] = [];
  /** Settles when the groups under way are written (or failed). */
  private draining: Promise<void> | undefined;
  /** The group whose transactions are running: `revision()` is where the running one builds. */
  private group: Group | undefined;
  private closed = false;

  constructor(
    private readonly dir: string,
    private readonly env: RootDatabase,
    private readonly logger: Logger,
  ) {
    this.watchers = new Watchers(logger);
    this.kv = env.openDB<StoredRecord, string>({ name: 'kv', encoding: 'json' });
    this.meta = env.openDB<number, string>({ name: 'meta', encoding: 'json' });
  }

  async get<V extends JsonValue = JsonValue>(key: string): Promise<V | undefined> {
    this.assertOpen();
    return this.kv.get(key)?.v as V | undefined;
  }

  async list<V extends JsonValue = JsonValue>(prefix: string): Promise<KeyValue<V>[]> {
    this.assertOpen();
    return this.committedList(prefix) as KeyValue<V>[];
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

  async txn<T>(fn: (tx: StoreTxn) => Promise<T>): Promise<T> {
    this.assertOpen();
    return new Promise<T>((resolve, reject) => {
      this.waiting.push({ fn, resolve: resolve as (value: unknown) => void, reject });
      this.draining ??= this.drain();
    });
  }

  watch(prefix: string, onEvent: (event: StoreEvent) => void): () => void {
    return this.watchers.add(prefix, onEvent);
  }

  /** Watchers hear every commit before it resolves: there is nothing to wait for. */
  async caughtUp(): Promise<void> {}

  /** One server per data dir: it is always the leader. */
  campaign(value: string): Leadership {
    return { isLeader: () => true, leader: () => value, subscribe: () => () => undefined };
  }

  announce(name: string, value: JsonValue): Membership {
    const self = [{ name, value: copyJson(name, value) }];
    return { members: () => self, subscribe: () => () => undefined };
  }

  problem(): string | undefined {
    return undefined;
  }

  async revision(): Promise<number> {
    this.assertOpen();
    return this.group?.revision ?? this.currentRevision();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Transactions queued before close still run; anything submitted after it rejects.
    await this.draining;
    this.watchers.clear();
    try {
      await this.env.close();
    } finally {
      openDirs.delete(this.dir);
    }
  }

  currentRevision(): number {
    return this.meta.get(revisionKey) ?? 0;
  }

  private assertOpen(): void {
    if (this.closed) throw new IsthmusError('unavailable', `store at ${this.dir} is closed`);
  }

  private committedList(prefix: string): KeyValue[] {
    const out: KeyValue[] = [];
    for (const { key, value } of this.kv.getRange(prefix === '' ? {} : { start: prefix })) {
      if (!key.startsWith(prefix)) break;
      out.push({ key, value: value.v, revision: value.r });
    }
    return out;
  }

  /** Committed state with the group's writes so far over it. */
  private groupGet(group: Group, key: string): StoredRecord | undefined {
    return group.writes.has(key) ? group.writes.get(key) : this.kv.get(key);
  }

  private groupList(group: Group, prefix: string): KeyValue[] {
    const listed = this.committedList(prefix);
    if (group.writes.size === 0) return listed;
    const byKey = new Map(listed.map((kv) => [kv.key, kv]));
    for (const [key, record] of group.writes) {
      if (!key.startsWith(prefix)) continue;
      if (record === undefined) byKey.delete(key);
      else byKey.set(key, { key, value: record.v, revision: record.r });
    }
    return overlay([...byKey.values()], new Map(), prefix, 0);
  }

  /**
   * Reads see committed state overlaid with the group's writes so far and then with `writes`;
   * puts show the revision they will commit at.
   */
  private txnView(group: Group, writes: PendingWrites): StoreTxn {
    const store = this;
    const pendingRevision = group.revision + 1;
    return {
      async get<V extends JsonValue = JsonValue>(key: string): Promise<V | undefined> {
        return (writes.has(key) ? writes.get(key) : store.groupGet(group, key)?.v) as V | undefined;
      },
      async list<V extends JsonValue = JsonValue>(prefix: string): Promise<KeyValue<V>[]> {
        return overlay(
          store.groupList(group, prefix),
          writes,
          prefix,
          pendingRevision,
        ) as KeyValue<V>[];
      },
      // One server per data dir, transactions one at a time: nothing else changes a prefix.
      unchanged(): void {},
      put(key: string, value: JsonValue): void {
        writes.set(checkKey(key), copyJson(key, value));
      },
      delete(key: string): void {
        writes.set(checkKey(key), undefined);
      },
    };
  }

  /**
   * Group commit: runs the transactions waiting now, one after another, then writes them in one
   * LMDB transaction; those submitted meanwhile form the next group.
   */
  private async drain(): Promise<void> {
    while (this.waiting.length > 0) {
      const queued = this.waiting.splice(0);
      const done = await this.runGroup(queued);
      try {
        this.commitGroup(done.group);
        this.watchers.notify(done.group.events);
        for (const { txn, result } of done.succeeded) txn.resolve(result);
      } catch (err) {
        for (const { txn } of done.succeeded) txn.reject(err);
      }
    }
    this.draining = undefined;
  }

  /**
   * Runs each transaction over the group's writes so far. One that throws is rejected at once and
   * leaves no write behind; the others wait for the group's commit.
   */
  private async runGroup(queued: readonly QueuedTxn[]): Promise<{
    group: Group;
    succeeded: { txn: QueuedTxn; result: unknown }[];
  }> {
    const group: Group = { writes: new Map(), events: [], revision: this.currentRevision() };
    const succeeded: { txn: QueuedTxn; result: unknown }[] = [];
    this.group = group;
    try {
      for (const txn of queued) {
        const writes: PendingWrites = new Map();
        try {
          const result = await txn.fn(this.txnView(group, writes));
          this.stage(group, writes);
          succeeded.push({ txn, result });
        } catch (err) {
          txn.reject(err);
        }
      }
    } finally {
      this.group = undefined;
    }
    return { group, succeeded };
  }

  /** Adds one transaction's writes to the group at the next revision. Deletes of absent keys are not changes. */
  private stage(group: Group, writes: PendingWrites): void {
    const revision = group.revision + 1;
    const events: StoreEvent[] = [];
    for (const [key, value] of writes) {
      if (value !== undefined) {
        group.writes.set(key, { r: revision, v: value });
        events.push({ kind: 'put', key, value, revision });
      } else if (this.groupGet(group, key) !== undefined) {
        group.writes.set(key, undefined);
        events.push({ kind: 'delete', key, revision });
      }
    }
    if (events.length === 0) return;
    group.revision = revision;
    // One by one: spreading a transaction of 100,000 writes into push() overflows the stack.
    for (const event of events) group.events.push(event);
  }

  /**
   * Writes a group and its revision in one durable LMDB transaction (`transactionSync`: flushed
   * before it returns). A transaction the disk refuses is aborted whole: LMDB writes its pages
   * copy-on-write and the meta page last, so the committed state and the revision stay as they
   * were, and nothing is notified (in-memory indexes apply only what was committed). A full disk
   * becomes `storage_full` (HTTP 507) naming ENOSPC and the directory.
   *
   * Not lmdb-js's asynchronous `transaction()`, which would flush off the event loop: when the
   * disk refuses such a commit, lmdb-js 3.5 also rejects a promise of its own that nobody can
   * handle, and an unhandled rejection ends the process.
   */
  private commitGroup(group: Group): void {
    if (group.events.length === 0) return;
    const startRevision = group.events[0]!.revision - 1;
    try {
      this.kv.transactionSync(() => {
        const revision = this.currentRevision();
        if (revision !== startRevision) {
          throw new IsthmusError(
            'failed_precondition',
            `store at ${this.dir} was written by another process (revision ${startRevision} → ${revision}); only one isthmus server may own a data dir`,
          );
        }
        for (const [key, record] of group.writes) {
          if (record !== undefined) this.kv.putSync(key, record);
          else this.kv.removeSync(key);
        }
        this.meta.putSync(revisionKey, group.revision);
      });
    } catch (err) {
      const reason = diskFullReason(err);
      if (reason === undefined) throw err;
      this.logger.warn({ dir: this.dir, reason }, 'store write refused: the disk is full');
      throw new IsthmusError(
        'storage_full',
        `store at ${this.dir} cannot write: ${reason}; reads keep serving, free space in the data directory and retry`,
      );
    }
  }
}

/** errno values of a full disk: ENOSPC and EDQUOT on Linux (LMDB reports the bare number). */
const diskFullErrnos: ReadonlyMap<number, string> = new Map([
  [28, 'ENOSPC (no space left on device)'],
  [122, 'EDQUOT (disk quota exceeded)'],
]);

/** Why a write failed if the disk is full (`undefined` for any other error). */
function diskFullReason(err: unknown): string | undefined {
  const { code, errno } = err as { code?: unknown; errno?: unknown };
  for (const value of [code, errno]) {
    if (typeof value === 'number' && diskFullErrnos.has(value)) return diskFullErrnos.get(value);
  }
  if (code === 'ENOSPC' || /no space left on device/i.test(String((err as Error)?.message)))
    return diskFullErrnos.get(28);
  if (code === 'EDQUOT') return diskFullErrnos.get(122);
  return undefined;
}

/**
 * Creates the data directory if needed and proves a file can be written in it, so a directory that
 * cannot be written fails the start with one line naming the path and the reason (LMDB's own
 * errors name neither), never later on the first write.
 */
function prepareWritableDir(dir: string): void {
  const probe = path.join(dir, '.isthmus-write-check');
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    fs.writeFileSync(probe, '');
    fs.rmSync(probe);
  } catch (err) {
    throw new IsthmusError(
      'failed_precondition',
      `data directory ${dir} is not writable: ${whyNotWritable(dir, err)}; choose another --data-dir or make it writable`,
      '--data-dir',
    );
  }
}

/**
 * The reason, told at the nearest path that exists: recursive mkdir reports ENOENT under a
 * read-only mount, where access(2) tells EROFS.
 */
function whyNotWritable(dir: string, err: unknown): string {
  let existing = path.resolve(dir);
  while (!fs.existsSync(existing) && path.dirname(existing) !== existing)
    existing = path.dirname(existing);
  if (!fs.statSync(existing).isDirectory()) return `${existing} is not a directory (ENOTDIR)`;
  try {
    fs.accessSync(existing, fs.constants.W_OK);
  } catch (accessErr) {
    return `${describeErrno(accessErr)} at ${existing}`;
  }
  return describeErrno(err);
}

const errnoText: Readonly<Record<string, string>> = {
  EROFS: 'read-only file system',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  ENOTDIR: 'not a directory',
};

function describeErrno(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  const text = code === undefined ? undefined : errnoText[code];
  return text ? `${text} (${code})` : String((err as Error).message ?? err);
}

/**
 * The store holds peering stream secrets and the CA key sits beside it: an existing data directory
 * (mkdir's mode applies only to one it creates) is narrowed to its owner too. A directory we do not
 * own (a mounted volume, say) is left alone with a warning.
 */
function restrictToOwner(dir: string, logger: Logger | undefined): void {
  const mode = fs.statSync(dir).mode & 0o777;
  if ((mode & 0o077) === 0) return;
  try {
    fs.chmodSync(dir, mode & 0o700);
    logger?.info(
      { dir, was: `0${mode.toString(8)}` },
      'data directory narrowed to owner-only access (0700)',
    );
  } catch (err) {
    logger?.warn(
      { dir, mode: `0${mode.toString(8)}`, error: (err as Error).message },
      'data directory is readable by others and cannot be changed: restrict it (chmod 700)',
    );
  }
}
