import { availableParallelism } from 'node:os';
import { relative } from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';
import { defineConfig } from 'vitest/config';

/**
 * What a test file is expected to take (ms) when vitest has no timing of it yet (a fresh clone,
 * as in CI): the fuzz campaigns and the tiers that start real processes take seconds, the unit
 * tests milliseconds.
 */
const expectedMsByTier: readonly (readonly [string, number])[] = [
  ['test/fuzz/', 60_000],
  ['test/envoy/', 10_000],
  ['test/faults/', 10_000],
  ['test/ui/', 10_000],
  ['test/integration/', 5_000],
  ['test/golden/', 2_000],
];

/**
 * Longest file first, so that the workers finish together instead of one long file running
 * alone at the end: vitest's own order does this only from timings of an earlier run (its cache
 * under node_modules/.vite), and falls back to the largest file first, which starts the short
 * fuzz file last. Here a file without a timing gets its tier's expectation.
 */
class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const expected = new Map(files.map((f) => [f, this.expectedMs(f)]));
    return [...files].sort((a, b) => expected.get(b)! - expected.get(a)!);
  }

  private expectedMs(spec: TestSpecification): number {
    const file = relative(this.ctx.config.root, spec.moduleId).replaceAll('\\', '/');
    const cached = this.ctx.cache.getFileTestResults(`${spec.project.name}:${file}`);
    if (cached !== undefined) return cached.duration;
    return expectedMsByTier.find(([dir]) => file.startsWith(dir))?.[1] ?? 500;
  }
}

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    globalSetup: ['test/helpers/cli-bundle.ts'],
    // vitest's default is one worker per core less one: ONE on a 2-core machine, which ran the
    // whole suite file after file while most files wait on the processes they started. Two files
    // at a time at least.
    maxWorkers: Math.max(2, availableParallelism() - 1),
    sequence: { sequencer: LongestFirst },
  },
});
