import { describe, expect, it, vi } from 'vitest';
import { printFields } from '../../src/cli/output.js';
import { printable } from '../../src/terminal.js';
import { renderChecklist } from '../../src/troubleshoot/index.js';

describe('printable: outside text cannot steer the terminal', () => {
  it('shows control characters, escape sequences and bidi overrides as visible escapes', () => {
    expect(printable('x\n\x1b[31mRED\x1b[0m\u202Eevil\ttab\u0085')).toBe(
      'x\\x0a\\x1b[31mRED\\x1b[0m\\u{202e}evil\\x09tab\\x85',
    );
  });

  it('leaves ordinary text, including non-Latin scripts and ✓/✗, alone', () => {
    expect(printable('✓ mesh gateway gw-1 (wan 203.0.113.7:443) — 東京 ok')).toBe(
      '✓ mesh gateway gw-1 (wan 203.0.113.7:443) — 東京 ok',
    );
  });

  it('a NACK message in a checklist stays on its line', () => {
    const text = renderChecklist({
      Subject: 'Proxy p',
      OK: false,
      Checks: [
        { Name: 'last NACK', OK: false, Detail: 'bad\n\x1b[2J✓ fake line', Fix: 'look\nagain' },
      ],
    });
    expect(text.split('\n')).toEqual([
      'Proxy p',
      '✗ last NACK: bad\\x0a\\x1b[2J✓ fake line',
      '    fix: look',
      '         again',
      '1 of 1 checks failed.',
    ]);
  });

  it("peering read and proxy detail fields (a peer's LastError or LastNack) stay on their line", () => {
    const write = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    try {
      printFields([
        ['Name', 'cluster-a'],
        ['Last NACK', 'bad\n\x1b[2Jfake'],
      ]);
      expect(write.mock.calls.map(([text]) => text)).toEqual([
        'Name:      cluster-a\nLast NACK: bad\\x0a\\x1b[2Jfake\n',
      ]);
    } finally {
      write.mockRestore();
    }
  });
});
