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

/**
 * The longest text an error or a log line echoes of one value from outside (issue 21 §3: a 1 MB
 * `Name` was echoed whole).
 */
export const maxEchoChars = 300;

/** `text` cut to `max` characters, saying how many were left out. */
export function clip(text: string, max = maxEchoChars): string {
  return text.length <= max ? text : `${text.slice(0, max)}…(${text.length - max} more)`;
}

/** Problems listed in one error at most; the rest are counted. */
const maxProblemsShown = 10;

/** `Field: problem` (or `request body: problem`), the text users see, each part clipped. */
export function describeError(e: FieldError): string {
  return `${e.field === '' ? 'request body' : clip(e.field, 200)}: ${clip(e.problem)}`;
}

/** The problems as one invalid_argument error naming the first field, for a boundary to report. */
export function invalidInput(errors: readonly FieldError[]): IsthmusError {
  const shown = errors.slice(0, maxProblemsShown).map(describeError);
  if (errors.length > maxProblemsShown)
    shown.push(`and ${errors.length - maxProblemsShown} more problems`);
  const field = errors[0]?.field;
  return new IsthmusError(
    'invalid_argument',
    shown.join('; '),
    field ? clip(field, 200) : undefined,
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
