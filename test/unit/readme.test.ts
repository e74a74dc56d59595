/**
 * The README is the operator's reference: every metric isthmus exports and every CLI command must
 * be in it, so a new one cannot ship undocumented.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../../src/cli/program.js';
import { Metrics } from '../../src/metrics.js';

const readme = readFileSync(join(import.meta.dirname, '..', '..', 'README.md'), 'utf8');

function commandPaths(cmd: Command, prefix: string[] = []): string[] {
  return cmd.commands.flatMap((c) => {
    const path = [...prefix, c.name()];
    return c.commands.length > 0 ? commandPaths(c, path) : [path.join(' ')];
  });
}

describe('README', () => {
  it('lists every isthmus_* metric', async () => {
    const names = (await new Metrics().registry.getMetricsAsJSON())
      .map((m) => m.name)
      .filter((n) => n.startsWith('isthmus_'));
    expect(names.length).toBeGreaterThan(10);
    expect(names.filter((n) => !readme.includes(`\`${n}\``))).toEqual([]);
  });

  it('names every CLI command', () => {
    const paths = commandPaths(buildProgram());
    expect(paths).toContain('proxy-status');
    expect(
      paths.filter((p) => !readme.includes(`isthmus ${p}`) && !readme.includes(`\`${p}`)),
    ).toEqual([]);
  });
});
