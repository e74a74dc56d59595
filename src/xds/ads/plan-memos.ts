import type { TypeEntries } from '../cache/type-entries.js';
import { allTypeUrls, pushOrder, type PushPhase } from '../types.js';

/** Per type index, the position in `pushOrder` of its upsert and of its remove step. */
const stepOf: Readonly<Record<PushPhase, readonly number[]>> = {
  upsert: allTypeUrls.map((_, i) =>
    pushOrder.findIndex((s) => s.index === i && s.phase === 'upsert'),
  ),
  remove: allTypeUrls.map((_, i) =>
    pushOrder.findIndex((s) => s.index === i && s.phase === 'remove'),
  ),
};

/**
 * A stream's plan memos, one per step of `pushOrder`: the entries the step was last planned
 * against with nothing left to send. Views keep a type's TypeEntries when it did not change, so
 * the same object means nothing new to plan, and a flush skips the step without reading the type's
 * state (docs/architecture.md §10 rule 10). Whatever changes what a plan would find (a request
 * that changes subscriptions, a NACK, a forced re-send, a removal the view makes) forgets the
 * type's memos here.
 */
export class PlanMemos {
  private readonly bySlot: (TypeEntries | undefined)[] = pushOrder.map(() => undefined);

  /** The memo of push step `slot`. */
  at(slot: number): TypeEntries | undefined {
    return this.bySlot[slot];
  }

  /** Push step `slot` has nothing left to send against `entries`. */
  set(slot: number, entries: TypeEntries): void {
    this.bySlot[slot] = entries;
  }

  /** The memo of the type's `phase` (see PushStep.index). */
  of(index: number, phase: PushPhase): TypeEntries | undefined {
    return this.bySlot[slotOf(phase, index)];
  }

  /** Stream-side state of the type changed: both its steps plan again. */
  forget(index: number): void {
    this.bySlot[slotOf('upsert', index)] = undefined;
    this.bySlot[slotOf('remove', index)] = undefined;
  }

  /** Only the type's removals plan again (Delta: a name the client did not hold was sent). */
  forgetRemovals(index: number): void {
    this.bySlot[slotOf('remove', index)] = undefined;
  }
}

function slotOf(phase: PushPhase, index: number): number {
  const slot = stepOf[phase][index];
  if (slot === undefined || slot < 0) throw new Error(`no ${phase} push step for type ${index}`);
  return slot;
}
