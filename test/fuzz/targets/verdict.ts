import { IsthmusError } from '../../../src/errors.js';

/**
 * What the fuzz targets count as a finding. Bad input answered with an error of ours that names
 * the problem (invalid_argument, permission_denied, ...) is the expected outcome; an `internal`
 * IsthmusError or any other exception escaping our code is a bug, and so is a broken invariant.
 */
export class Finding extends Error {
  override readonly name = 'Finding';
}

/** Rethrows `err` as a finding unless it is an expected (non-internal) IsthmusError. */
export function expectRefusal(err: unknown, what: string): void {
  if (err instanceof IsthmusError && err.code !== 'internal') return;
  const detail = err instanceof Error ? (err.stack ?? err.message) : String(err);
  throw new Finding(`${what}: unexpected error, not a refusal: ${detail}`);
}

export function check(condition: boolean, what: string): asserts condition {
  if (!condition) throw new Finding(what);
}

/** The input as lines of text (the seed corpora are text: one JSON value or token per line). */
export function linesOf(data: Buffer, max = 16): string[] {
  return data.toString('utf8').split('\n').slice(0, max);
}
