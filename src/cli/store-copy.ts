import { loadRecords } from '../ca/ca-store.js';
import { RootKeyFiles } from '../ca/root-key-files.js';
import { RootKeysInStore } from '../ca/root-keys-in-store.js';
import { IsthmusError } from '../errors.js';
import type { JsonValue, KeyValue, Store } from '../store/index.js';

/** What `copyStore` wrote: keys per family (`catalog/instances`, `ca/keys`, ...). */
export interface CopyReport {
  readonly families: ReadonlyMap<string, number>;
  readonly keys: number;
  /** Keys that were under the destination prefix and were removed first (`--force`). */
  readonly replaced: number;
  /** The source store's revision, and the destination's after the copy. */
  readonly sourceRevision: number;
  readonly revision: number;
}

export interface CopyOptions {
  /** The data dir of the LMDB store, where its CA root key files are (`<dir>/ca/`). */
  readonly dataDir: string;
  /** Replace whatever is under the destination prefix. */
  readonly force: boolean;
  /** Called now and then while the destination's revision is moved forward. */
  readonly onProgress?: (message: string) => void;
}

/** etcd's default limit of operations in one Txn is 128. */
const opsPerTxn = 100;
/** A scratch key written to move the destination's revision forward, removed at the end. */
const paddingKey = 'store-copy/padding';

/**
 * Copies every key of a single server's store (LMDB) to an empty store shared by several servers
 * (etcd), and its CA root private keys from the data dir's files into the store
 * (`ca/keys/<root id>`, where servers on etcd keep them): docs/architecture.md "Store".
 *
 * The destination's revision is first moved up to the source's (writes of a scratch key), then the
 * keys are written in the order of their source revisions: each gets a revision above every index
 * stored in the records (`CreateIndex`, `ModifyIndex`), in the same order, and so does every later
 * write (the catalog tells a changed instance from a heartbeat by its ModifyIndex, so an index must
 * never be handed out twice). Indexes read from a key's own revision (the CA roots') move up.
 */
export async function copyStore(from: Store, to: Store, opts: CopyOptions): Promise<CopyReport> {
  const source = await from.list('');
  const rootKeys = await readRootKeys(from, opts.dataDir);
  const existing = await to.list('');
  if (existing.length > 0 && !opts.force)
    throw new IsthmusError(
      'failed_precondition',
      `the destination already holds ${existing.length} keys (e.g. ${existing[0]?.key}); copy to an empty prefix, or pass --force to replace them`,
    );
  await inBatches(existing, (tx, kv) => tx.delete(kv.key), to);
  await padTo(to, await from.revision(), opts.onProgress);
  for (const group of byRevision(source))
    await inBatches(group, (tx, kv) => tx.put(kv.key, kv.value), to);
  const keysInStore = new RootKeysInStore(to);
  for (const [rootId, keyPem] of rootKeys) await keysInStore.write(rootId, keyPem);
  await to.delete(paddingKey);
  const families = new Map<string, number>();
  for (const kv of [...source, ...rootKeys.map(([id]) => ({ key: `ca/keys/${id}` }))])
    families.set(familyOf(kv.key), (families.get(familyOf(kv.key)) ?? 0) + 1);
  await verify(source, to);
  return {
    families: new Map([...families].sort(([a], [b]) => (a < b ? -1 : 1))),
    keys: source.length + rootKeys.length,
    replaced: existing.length,
    sourceRevision: await from.revision(),
    revision: await to.revision(),
  };
}

/** Every CA root's private key, read from the data dir before anything is written. */
async function readRootKeys(from: Store, dataDir: string): Promise<[string, string][]> {
  const files = new RootKeyFiles(dataDir);
  const { roots } = await loadRecords(from);
  return Promise.all(
    roots.map(async (r) => [r.value.id, await files.read(r.value.id)] as [string, string]),
  );
}

/** Source keys grouped by the revision they were written at, oldest first. */
function byRevision(kvs: readonly KeyValue[]): KeyValue[][] {
  const groups = new Map<number, KeyValue[]>();
  for (const kv of kvs) groups.set(kv.revision, [...(groups.get(kv.revision) ?? []), kv]);
  return [...groups.keys()].sort((a, b) => a - b).map((r) => groups.get(r)!);
}

/** Writes the scratch key until the destination's revision reaches `target` (if it is below). */
async function padTo(to: Store, target: number, onProgress?: (message: string) => void) {
  let revision = await to.revision();
  let written = 0;
  while (revision < target) {
    for (let i = revision; i < target; i++) {
      await to.put(paddingKey, i);
      if (++written % 10_000 === 0) onProgress?.(`revision ${i + 1} of ${target}`);
    }
    revision = await to.revision();
  }
}

async function inBatches(
  kvs: readonly KeyValue[],
  stage: (
    tx: { put(k: string, v: JsonValue): void; delete(k: string): void },
    kv: KeyValue,
  ) => void,
  to: Store,
): Promise<void> {
  for (let i = 0; i < kvs.length; i += opsPerTxn) {
    const batch = kvs.slice(i, i + opsPerTxn);
    await to.txn(async (tx) => {
      for (const kv of batch) stage(tx, kv);
    });
  }
}

/** Reads the destination back: every source key with an equal value (the root keys beside them). */
async function verify(source: readonly KeyValue[], to: Store): Promise<void> {
  const copied = new Map((await to.list('')).map((kv) => [kv.key, JSON.stringify(kv.value)]));
  for (const kv of source) {
    if (copied.get(kv.key) !== JSON.stringify(kv.value))
      throw new IsthmusError(
        'internal',
        `the destination does not read back ${kv.key} as written; run the copy again with --force`,
      );
  }
}

/** `catalog/instances/web-1` → `catalog/instances`; `ca/cluster` → `ca`. */
function familyOf(key: string): string {
  const parts = key.split('/');
  return parts.length >= 3 ? `${parts[0]}/${parts[1]}` : (parts[0] ?? key);
}
