/**
 * A step of `isthmus demo`'s tour: it has a name and a deadline, and a failure says which step
 * failed and why, with the lines that explain it (an Envoy's last log lines) when there are any.
 */
import { withDeadline } from '../probe/deadline.js';
import { printable } from '../terminal.js';
import { EnvoyFailure } from './envoy-process.js';

export const stepTimeoutMs = 15_000;

export class StepFailure extends Error {
  constructor(
    readonly step: string,
    reason: string,
    /** Shown indented under the ✗ line, as they are (log lines). */
    readonly details: readonly string[] = [],
  ) {
    super(reason);
  }
}

export async function step<T>(
  name: string,
  fn: () => Promise<T>,
  timeoutMs = stepTimeoutMs,
): Promise<T> {
  try {
    return await withDeadline(fn(), { timeoutMs, what: name });
  } catch (err) {
    if (err instanceof StepFailure) throw err;
    if (err instanceof EnvoyFailure)
      throw new StepFailure(name, err.message, [
        `last lines of envoy ${err.envoy}'s log:`,
        ...err.logLines.map((l) => `  ${printable(l)}`),
      ]);
    throw new StepFailure(name, err instanceof Error ? err.message : String(err));
  }
}
