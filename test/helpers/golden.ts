/**
 * Golden files for generated Envoy config: resources serialized as Envoy-style JSON
 * with every `Any` expanded (`@type` + fields), one file per proxy and xDS type under
 * test/golden/<case>/. `UPDATE_GOLDEN=1 npx vitest run test/golden` rewrites them; a test fails on
 * golden files no case produces (orphans).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
export { expandedJson } from '../../src/xds/envoy-json.js';

export const goldenRoot = join(dirname(fileURLToPath(import.meta.url)), '..', 'golden');
const update = process.env.UPDATE_GOLDEN === '1';
const written = new Set<string>();

/** Replaces values that differ run to run (trust domain, PEMs, ports) with stable placeholders. */
export type Masker = (text: string) => string;

/** Compares (or with UPDATE_GOLDEN=1 writes) test/golden/<file>. Returns the expected text. */
export function expectGolden(
  file: string,
  data: unknown,
  mask: Masker = (t) => t,
): { actual: string; expected: string } {
  return expectGoldenText(file, JSON.stringify(data, null, 2), mask);
}

/** The same for text output (a CLI's stdout, say): compare `actual` with `expected`. */
export function expectGoldenText(
  file: string,
  text: string,
  mask: Masker = (t) => t,
): { actual: string; expected: string } {
  const path = join(goldenRoot, file);
  written.add(path);
  const actual = `${mask(text).replace(/\n*$/, '')}\n`;
  if (update || !existsSync(path)) {
    if (!update && process.env.CI)
      throw new Error(
        `golden file missing: ${relative(goldenRoot, path)} (run UPDATE_GOLDEN=1 locally)`,
      );
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, actual);
  }
  return { actual, expected: readFileSync(path, 'utf8') };
}

/** Golden files under `dir` that no expectGolden call of this run produced. */
export function orphanedGoldens(dir: string): string[] {
  const root = join(goldenRoot, dir);
  if (!existsSync(root)) return [];
  const all: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else all.push(p);
    }
  };
  walk(root);
  return all.filter((p) => !written.has(p)).map((p) => relative(goldenRoot, p));
}
