/**
 * Coverage-guided fuzzing in `npm test` (issue 21 §4): each target of test/fuzz/targets/ runs under
 * Jazzer.js for ISTHMUS_FUZZ_SECONDS (10 s by default, one target after another: each keeps a core
 * busy the whole time, which the other test files need) from its seed corpus; `npm run test:fuzz`
 * runs each for 5 minutes. A finding fails the test with the input that caused it; such an input
 * becomes a regression test in test/unit/.
 */
import { describe, expect, it } from 'vitest';
import { fuzzTarget, skipWithoutJazzer } from './jazzer.js';

const seconds = Number(process.env.ISTHMUS_FUZZ_SECONDS ?? 10);
const targets = ['peering-messages', 'xds-requests', 'http-bodies', 'tokens'] as const;

describe.skipIf(skipWithoutJazzer())('fuzzing with Jazzer.js', () => {
  it('finds the canary bug and reports the input that triggers it', async () => {
    const run = await fuzzTarget('canary', 60);
    expect(run.code, run.output).not.toBe(0);
    expect(run.output).toContain('canary: the input starts with FUZZ');
    expect(run.crashes.length, run.output).toBe(1);
    expect(run.crashes[0]!.startsWith('FUZZ'), run.output).toBe(true);
  }, 300_000);

  for (const target of targets) {
    it(
      `${target}: ${seconds} s without a finding`,
      async () => {
        const run = await fuzzTarget(target, seconds);
        const report = [
          `jazzer exit code ${run.code}`,
          ...run.crashes.map((c) => `crashing input: ${JSON.stringify(c)}`),
          run.output,
        ].join('\n');
        expect(run.crashes, report).toEqual([]);
        expect(run.code, report).toBe(0);
        // The target really ran: libFuzzer executed it well beyond the seeds.
        expect(run.runs, report).toBeGreaterThan(100);
      },
      (seconds + 240) * 1000,
    );
  }
});
