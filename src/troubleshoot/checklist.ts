/**
 * The troubleshoot checklists' result: the HTTP JSON of `GET /v1/troubleshoot/*` and what
 * `isthmus troubleshoot` prints. Every failed check says how to fix it.
 */
import { printable } from '../terminal.js';

export interface Check {
  readonly Name: string;
  /** Passed, or not applicable (`Skipped`): only a real failure is false. */
  readonly OK: boolean;
  readonly Detail: string;
  /** What to do about a failure (always set when OK is false). */
  readonly Fix?: string;
  /** Not applicable here (an earlier check explains why): shown as `-`, counts as passed. */
  readonly Skipped?: true;
}

export interface Checklist {
  readonly Subject: string;
  readonly Checks: readonly Check[];
  /** Every check passed or was skipped. */
  readonly OK: boolean;
}

export const pass = (Name: string, Detail: string): Check => ({ Name, OK: true, Detail });
export const fail = (Name: string, Detail: string, Fix: string): Check => ({
  Name,
  OK: false,
  Detail,
  Fix,
});
export const skip = (Name: string, Detail: string): Check => ({
  Name,
  OK: true,
  Detail,
  Skipped: true,
});

export function checklist(Subject: string, Checks: readonly Check[]): Checklist {
  return { Subject, Checks, OK: Checks.every((c) => c.OK) };
}

/** `3s`, `2m5s`, `1h2m`: how long ago, as an operator reads it. */
export function formatAge(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${s % 60 ? `${s % 60}s` : ''}`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h${m % 60 ? `${m % 60}m` : ''}`;
  return `${Math.floor(h / 24)}d`;
}

/** A configured duration: exact (`2500ms`) unless it is whole seconds (`2s`, `2m`). */
export function formatDuration(ms: number): string {
  return ms % 1000 === 0 ? formatAge(ms) : `${ms}ms`;
}

/** The text `isthmus troubleshoot` prints: one line per check, an indented fix under each ✗. */
export function renderChecklist(list: Checklist): string {
  const lines = [list.Subject];
  for (const c of list.Checks) {
    const mark = c.Skipped ? '-' : c.OK ? '✓' : '✗';
    // Details may quote a proxy's NACK message: never let it steer the operator's terminal.
    lines.push(`${mark} ${printable(c.Name)}: ${printable(c.Detail)}`);
    if (!c.OK && c.Fix)
      lines.push(
        ...c.Fix.split('\n').map((l, i) => `    ${i === 0 ? 'fix: ' : '     '}${printable(l)}`),
      );
  }
  const failed = list.Checks.filter((c) => !c.OK).length;
  lines.push(
    failed === 0 ? 'All checks passed.' : `${failed} of ${list.Checks.length} checks failed.`,
  );
  return lines.join('\n');
}
