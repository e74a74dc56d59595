/**
 * The layers of src/ (docs/architecture.md §12): a module imports only from itself and from the
 * layers below it, so each layer can be read, tested and changed knowing only what is under it.
 * Imports are read with TypeScript's own pre-processor (static, dynamic and type-only imports and
 * re-exports alike).
 */
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const src = resolve(import.meta.dirname, '..', '..', 'src');

/**
 * Bottom to top. A module is a top-level file or folder of src/ (`server.ts` and `server/` are one
 * module). Modules in one row may not import each other, except in the foundation row.
 */
const layers: readonly (readonly string[])[] = [
  // foundation: generated protos and helpers with no isthmus domain in them
  [
    'gen',
    'errors',
    'result',
    'problems',
    'log',
    'log-limits',
    'dns-names',
    'grpc-status',
    'terminal',
    'proto-any',
    'lean-metrics',
  ],
  ['metrics'],
  ['config'],
  ['mesh'],
  ['store'],
  ['catalog', 'ca', 'acl'],
  ['peering', 'discovery-chain', 'federation'],
  ['snapshot'],
  ['xds'],
  ['probe', 'troubleshoot'],
  ['api'],
  ['server'],
  ['demo'],
  ['cli'],
];
const foundation = 0;

/** Known upward imports, each with the item that removes it. */
const allowed: readonly string[] = [];

interface Import {
  /** The importing file and the imported one, relative to src/. */
  readonly from: string;
  readonly to: string;
  /** The import as written. */
  readonly spec: string;
}

const moduleOf = (path: string): string => path.split('/')[0]!.replace(/\.ts$/, '');

function layerOf(module: string): number {
  return layers.findIndex((row) => row.includes(module));
}

/** Every upward or sideways import, as a line naming the file, the import and the two layers. */
function layerViolations(imports: readonly Import[]): string[] {
  const out: string[] = [];
  for (const i of imports) {
    const [a, b] = [moduleOf(i.from), moduleOf(i.to)];
    if (a === b || allowed.includes(`${i.from} -> ${i.to}`)) continue;
    const [la, lb] = [layerOf(a), layerOf(b)];
    if (la < 0 || lb < 0) {
      out.push(`${i.from}: module ${la < 0 ? a : b} is in no layer; add it to the table`);
    } else if (lb > la) {
      out.push(`${i.from} imports '${i.spec}': ${b}/ is above ${a}/ (layer ${lb} > ${la})`);
    } else if (lb === la && la !== foundation) {
      out.push(`${i.from} imports '${i.spec}': ${a}/ and ${b}/ are siblings (layer ${la})`);
    }
  }
  return out;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return e.name === 'gen' && dir === src ? [] : sourceFiles(path);
    return e.name.endsWith('.ts') ? [path] : [];
  });
}

function importsOf(file: string): Import[] {
  const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
  return info.importedFiles
    .map((f) => f.fileName)
    .filter((spec) => spec.startsWith('.'))
    .map((spec) => ({
      from: relative(src, file),
      to: relative(src, resolve(dirname(file), spec.replace(/\.js$/, '.ts'))),
      spec,
    }));
}

describe('layers (docs/architecture.md §12)', () => {
  const files = sourceFiles(src);

  it('every module of src/ is in a layer', () => {
    const modules = new Set(files.map((f) => moduleOf(relative(src, f))));
    expect([...modules].filter((m) => layerOf(m) < 0)).toEqual([]);
  });

  it('no module imports from a layer above it or from a sibling', () => {
    const imports = files.flatMap(importsOf);
    expect(imports.length).toBeGreaterThan(500);
    const violations = layerViolations(imports);
    expect(violations, `upward imports:\n${violations.join('\n')}\n`).toEqual([]);
  });

  it('names the file and the import of an upward or sideways one', () => {
    expect(
      layerViolations([
        { from: 'peering/exports.ts', to: 'snapshot/lookups.ts', spec: '../snapshot/lookups.js' },
        { from: 'ca/x509.ts', to: 'acl/index.ts', spec: '../acl/index.js' },
        { from: 'snapshot/context.ts', to: 'peering/imported.ts', spec: '../peering/imported.js' },
      ]),
    ).toEqual([
      "peering/exports.ts imports '../snapshot/lookups.js': snapshot/ is above peering/ (layer 7 > 6)",
      "ca/x509.ts imports '../acl/index.js': ca/ and acl/ are siblings (layer 5)",
    ]);
  });
});
