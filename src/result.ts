/**
 * The one success-or-error value of isthmus: what `parse*` functions return for untrusted input
 * instead of throwing (docs/architecture.md §3). `E` says what an error carries: a sentence, every
 * problem with its field path (`FieldError[]`, src/problems.ts), or an IsthmusError ready for a
 * boundary.
 */
export type Result<T, E> = Ok<T> | Err<E>;

export interface Ok<T> {
  readonly ok: true;
  readonly value: T;
}

export interface Err<E> {
  readonly ok: false;
  readonly error: E;
}

export const ok = <T>(value: T): Ok<T> => ({ ok: true, value });

export const err = <E>(error: E): Err<E> => ({ ok: false, error });
