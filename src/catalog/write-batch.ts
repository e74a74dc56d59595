import type { StoreTxn } from '../store/store.js';
import type { CatalogIndex, ConfigRecord } from './catalog-index.js';
import type { InstanceChanges } from './instance-changes.js';
import { storedConfigEntries, storedInstances } from './records.js';
import type { ConfigEntryKind } from './types.js';

/** What one catalog write stages: instance changes and config entries. */
export interface Staging {
  instances(changes: InstanceChanges): InstanceChanges;
  putConfig(record: ConfigRecord): void;
  deleteConfig(kind: ConfigEntryKind, name: string): void;
}

/** One write's outcome in a batch: its value, or the error that fails it alone. */
export type Planned<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly error: unknown };

/**
 * The writes of one catalog batch (docs/architecture.md §11 "Registration at scale"): each is
 * planned against the committed index plus what the batch's earlier writes staged, so the batch
 * commits in one Store transaction as if its writes had committed one after another.
 *
 * What a write stages goes into the index at once, for the plans after it to see, and is undone
 * (in reverse) when that write throws, or for all of them by `rollback` before the transaction
 * commits: planning is synchronous, so nothing else reads the index in between, and the index
 * takes the committed writes from the Store watch as it does any other.
 */
export class WriteBatch implements Staging {
  private readonly undo: (() => void)[] = [];
  private readonly writes: ((tx: StoreTxn) => void)[] = [];

  constructor(private readonly index: CatalogIndex) {}

  /** Runs one write's plan; if it throws, nothing it staged stays, and the others go on. */
  plan<T>(fn: (staging: Staging) => T): Planned<T> {
    const undoMark = this.undo.length;
    const writesMark = this.writes.length;
    try {
      return { ok: true, value: fn(this) };
    } catch (error) {
      this.undoTo(undoMark);
      this.writes.length = writesMark;
      return { ok: false, error };
    }
  }

  instances(changes: InstanceChanges): InstanceChanges {
    // Upserts before removals, as the transaction applies them (a removal of a key put wins).
    for (const stored of changes.upserts) {
      const id = stored.instance.id;
      const previous = this.index.get(id);
      this.index.put(stored);
      this.undo.push(() => (previous ? this.index.put(previous) : this.index.remove(id)));
      this.writes.push((tx) => storedInstances.put(tx, id, stored));
    }
    for (const { id } of changes.removals) {
      const previous = this.index.remove(id);
      if (previous) this.undo.push(() => this.index.put(previous));
      this.writes.push((tx) => storedInstances.delete(tx, id));
    }
    return changes;
  }

  putConfig(record: ConfigRecord): void {
    const { kind, name } = record.entry;
    const previous = this.index.config(kind, name);
    this.index.putConfig(record);
    this.undo.push(() =>
      previous ? this.index.putConfig(previous) : this.index.removeConfig(kind, name),
    );
    this.writes.push((tx) => storedConfigEntries.put(tx, configId(kind, name), record));
  }

  deleteConfig(kind: ConfigEntryKind, name: string): void {
    const previous = this.index.removeConfig(kind, name);
    if (previous) this.undo.push(() => this.index.putConfig(previous));
    this.writes.push((tx) => storedConfigEntries.delete(tx, configId(kind, name)));
  }

  /** Puts the index back as committed (call before the transaction commits). */
  rollback(): void {
    this.undoTo(0);
  }

  /** Stages every accepted write in `tx`, in the order they were planned. */
  commitTo(tx: StoreTxn): void {
    for (const write of this.writes) write(tx);
  }

  private undoTo(mark: number): void {
    while (this.undo.length > mark) this.undo.pop()!();
  }
}

export function configId(kind: ConfigEntryKind, name: string): string {
  return `${kind}/${name}`;
}
