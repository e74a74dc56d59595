/**
 * Before/after in one run: `bench:ads-fanout` of another checkout (the commit a change started
 * from, with its own `npm ci`) and of this one, run alternately so both see the same machine
 * load, then one table of medians and ranges (bench/README.md).
 *
 *   node bin/run-ts.js bench/ads-fanout/compare.ts --base ../base [--runs 5] [-- bench options]
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { median } from './stats.js';

/** The figures of one report, read from its printed lines. */
interface Figures {
  /** push path / raw fan-out (p50 / p50), ×. */
  readonly ratio: number;
  /** push path / raw fan-out with the ACK leg, ×. */
  readonly ackRatio: number;
  /** isthmus's own work per push, in-process, µs. */
  readonly ownUs: number;
  /** Its publish-and-write part, µs. */
  readonly publishUs: number;
  /** Its ACK part, µs. */
  readonly ackUs: number;
  /** 1000-cluster SotW CDS assembly, median µs. */
  readonly cdsUs: number;
}

const figureLines: Readonly<Record<keyof Figures, RegExp>> = {
  ratio: /^push path \/ raw fan-out \(p50 \/ p50\)\s+([\d.]+)×/m,
  ackRatio: /^push path \/ raw fan-out with the ACK leg \(p50 \/ p50\)\s+([\d.]+)×/m,
  ownUs: /^isthmus's own work per push.*?\s([\d.]+) µs \(/m,
  publishUs: /^isthmus's own work per push.*?µs \(([\d.]+) \+/m,
  ackUs: /^isthmus's own work per push.*?µs \([\d.]+ \+ [\d.]+ \+ ([\d.]+)\)/m,
  cdsUs: /^1000-cluster SotW CDS assembly, median \(p90\)\s+([\d.]+) µs/m,
};

function parseFigures(report: string): Figures {
  const out: Partial<Record<keyof Figures, number>> = {};
  for (const [key, re] of Object.entries(figureLines) as [keyof Figures, RegExp][]) {
    const m = re.exec(report);
    if (!m?.[1]) throw new Error(`the report has no "${key}" figure:\n${report}`);
    out[key] = Number(m[1]);
  }
  return out as Figures;
}

/** Runs the fan-out benchmark in checkout `dir`; resolves with its figures. */
function runBench(dir: string, args: readonly string[]): Promise<Figures> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, ['bin/run-ts.js', 'bench/ads-fanout/main.ts', ...args], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      out += s;
    });
    child.on('error', fail);
    child.on('close', (code) => {
      if (code !== 0) fail(new Error(`bench:ads-fanout in ${dir} exited ${code}:\n${out}`));
      else {
        try {
          done(parseFigures(out));
        } catch (err) {
          fail(err);
        }
      }
    });
  });
}

const rows: readonly [keyof Figures, string, number][] = [
  ['ratio', 'push path / raw fan-out (p50 / p50), ×', 2],
  ['ackRatio', 'push path / raw fan-out with the ACK leg, ×', 2],
  ['ownUs', "isthmus's own work per push, µs", 1],
  ['publishUs', '  of which publish and write, µs', 1],
  ['ackUs', '  of which ACK, µs', 1],
  ['cdsUs', '1000-cluster SotW CDS assembly, µs', 0],
];

function summary(values: readonly number[], digits: number): string {
  const lo = Math.min(...values).toFixed(digits);
  const hi = Math.max(...values).toFixed(digits);
  return `${median(values).toFixed(digits)} (${lo}–${hi})`;
}

function printTable(base: readonly Figures[], head: readonly Figures[], runs: number): void {
  const width = 46;
  const col = 22;
  console.log(
    `\nbench:ads-fanout, ${runs} runs each, alternating; median (min–max) over the runs\n`,
  );
  console.log(`${'figure'.padEnd(width)}${'before'.padStart(col)}${'after'.padStart(col)}`);
  for (const [key, label, digits] of rows) {
    const before = summary(
      base.map((f) => f[key]),
      digits,
    );
    const after = summary(
      head.map((f) => f[key]),
      digits,
    );
    console.log(`${label.padEnd(width)}${before.padStart(col)}${after.padStart(col)}`);
  }
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    options: {
      base: { type: 'string' },
      runs: { type: 'string', default: '5' },
    },
    allowPositionals: true,
  });
  const runs = Number(values.runs);
  if (!values.base || !Number.isInteger(runs) || runs < 1) {
    console.error(
      'usage: node bin/run-ts.js bench/ads-fanout/compare.ts --base DIR [--runs N] [-- bench options]',
    );
    process.exit(2);
  }
  const baseDir = resolve(values.base);
  if (!existsSync(resolve(baseDir, 'bench/ads-fanout/main.ts')))
    throw new Error(`${baseDir} is not a checkout with bench/ads-fanout (run npm ci there)`);
  const headDir = process.cwd();
  const base: Figures[] = [];
  const head: Figures[] = [];
  for (let r = 0; r < runs; r++) {
    // Who goes first alternates too: a machine that gets busier or quieter favours neither.
    const order: [Figures[], string][] =
      r % 2 === 0
        ? [
            [base, baseDir],
            [head, headDir],
          ]
        : [
            [head, headDir],
            [base, baseDir],
          ];
    for (const [into, dir] of order) {
      const figures = await runBench(dir, positionals);
      into.push(figures);
      console.error(
        `run ${r + 1}/${runs} ${dir === baseDir ? 'before' : 'after '}: ${figures.ratio}×, ${figures.ownUs} µs`,
      );
    }
  }
  printTable(base, head, runs);
}

main().catch((err: unknown) => {
  console.error(`compare failed: ${(err as Error)?.stack ?? String(err)}`);
  process.exit(1);
});
