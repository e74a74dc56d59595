import { IsthmusError } from './errors.js';
import { type Result, err, ok } from './result.js';

/**
 * Problems found in untrusted input (HTTP bodies, config entries, replicated resources), each with
 * the path of the offending field, collected rather than thrown: a user sees every problem at once.
 */
export interface FieldError {
  /** JSON path of the field (`Proxy.Upstreams[1].LocalBindPort`); '' for the body itself. */
  readonly field: string;
  /** What is wrong and what is allowed, e.g. `must be an integer 1-65535`. */
  readonly problem: string;
}

/** `Field: problem` (or `request body: problem`), the text users see. */
export function describeError(e: FieldError): string {
  return `${e.field === '' ? 'request body' : e.field}: ${e.problem}`;
}

/** The problems as one invalid_argument error naming the first field, for a boundary to report. */
export function invalidInput(errors: readonly FieldError[]): IsthmusError {
  return new IsthmusError(
    'invalid_argument',
    errors.map(describeError).join('; '),
    errors[0]?.field || undefined,
  );
}

export class Problems {
  readonly list: FieldError[] = [];

  /** Records a problem; returns `undefined` so a reader can `return p.add(...)` for the field. */
  add(field: string, problem: string): undefined {
    this.list.push({ field, problem });
    return undefined;
  }

  /** `value`, unless a problem was recorded or the value could not be read at all. */
  result<T>(value: T | undefined): Result<T, readonly FieldError[]> {
    if (this.list.length > 0 || value === undefined) return err(this.list);
    return ok(value);
  }
}
