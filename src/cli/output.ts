import { printable } from '../terminal.js';

/** What CLI commands print on stdout: a line of text, a JSON document, or an aligned table. */
export function print(value: unknown): void {
  process.stdout.write(
    typeof value === 'string' ? `${value}\n` : `${JSON.stringify(value, null, 2)}\n`,
  );
}

/**
 * `Key: value` lines with the values aligned; values are shown like table cells (see printTable).
 */
export function printFields(rows: readonly (readonly [string, string])[]): void {
  const width = Math.max(...rows.map(([k]) => k.length)) + 1;
  print(rows.map(([k, v]) => `${`${k}:`.padEnd(width)} ${printable(v)}`).join('\n'));
}

/**
 * Cells are one line each: control and bidi characters in them are shown escaped (see terminal.ts).
 */
export function printTable(
  headers: readonly string[],
  unsafeRows: readonly (readonly string[])[],
): void {
  const rows = unsafeRows.map((r) => r.map(printable));
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  print([line(headers), ...rows.map(line)].join('\n'));
}
