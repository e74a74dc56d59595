import { type Changes, mergeChanges } from './pieces.js';

/** A proxy waiting for its rebuild: what changed since its last build, and since when (ms). */
interface Waiting {
  changes: Changes;
  readonly since: number;
}

/**
 * The proxies waiting for a rebuild (docs/architecture.md §2 "Incremental builds"), in two queues,
 * each in the order its proxies became dirty: those already built (an update, such as a moved
 * endpoint) are taken before those never built. A first build waits for the proxy's own leaf, so
 * after thousands of registrations an update must not wait behind all of them (issue 14: the first
 * endpoint move took as long as the whole backlog of first builds).
 */
export class DirtyQueue {
  private readonly updates = new Map<string, Waiting>();
  private readonly firsts = new Map<string, Waiting>();

  get size(): number {
    return this.updates.size + this.firsts.size;
  }

  /** Proxies waiting, updates first. */
  ids(): string[] {
    return [...this.updates.keys(), ...this.firsts.keys()];
  }

  /**
   * Adds `changes` to what `id` waits for; a proxy not waiting yet joins the queue of updates
   * when `built`, else the queue of first builds.
   */
  mark(id: string, changes: Changes, built: boolean, now: number): void {
    const waiting = this.updates.get(id) ?? this.firsts.get(id);
    if (waiting) waiting.changes = mergeChanges(waiting.changes, changes);
    else (built ? this.updates : this.firsts).set(id, { changes, since: now });
  }

  delete(id: string): void {
    this.updates.delete(id);
    this.firsts.delete(id);
  }

  /**
   * The next proxy to rebuild among those waiting since `cutoff` or earlier, updates first; it
   * leaves the queue. Each queue is oldest first, so only its head needs a look.
   */
  take(cutoff: number): { readonly id: string; readonly changes: Changes } | undefined {
    for (const queue of [this.updates, this.firsts]) {
      const head = queue.entries().next();
      if (head.done || head.value[1].since > cutoff) continue;
      const [id, { changes }] = head.value;
      queue.delete(id);
      return { id, changes };
    }
    return undefined;
  }
}
