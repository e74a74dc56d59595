import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { secretRow } from '../../src/cli/proxy-command.js';

/** The secrets the golden sidecar exported to two peers holds (trust domains and PEMs masked). */
const golden = JSON.parse(
  readFileSync(
    join(import.meta.dirname, '../golden/peered/sidecar-exported-to-two-peers/sds.json'),
    'utf8',
  ),
) as { name: string }[];

describe('isthmus proxy-config secrets', () => {
  it('names the trust domains of a SPIFFE validator secret (an exported sidecar accepting two peers)', () => {
    const inbound = golden.find((s) => s.name === 'roots:inbound')!;
    expect(secretRow(inbound.name, inbound)).toEqual([
      'roots:inbound',
      'validation',
      'SPIFFE: <trust-domain-a>, <trust-domain-b>, <trust-domain-c>',
      '-',
      '-',
    ]);
  });
});
