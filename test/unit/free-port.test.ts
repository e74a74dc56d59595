/**
 * The port picker of the demo and of the real-Envoy tests hands a port to one process at a time.
 * Envoy binds its listeners with SO_REUSEPORT, so two processes given the same port would both
 * bind it, and each would get some of the other's connections (src/demo/free-port.ts).
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { claimPort, freePort } from '../../src/demo/free-port.js';

const freePortModule = fileURLToPath(new URL('../../src/demo/free-port.ts', import.meta.url));

/** Whether a fresh process can claim `port` (it exits at once, which drops its claim). */
async function claimableElsewhere(port: number): Promise<boolean> {
  const script = [
    'const { claimPort } = await import(process.argv[1]);',
    'process.stdout.write(String((await claimPort(Number(process.argv[2]))) !== undefined));',
  ].join('\n');
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['--import', 'tsx', '--input-type=module', '-e', script, freePortModule, String(port)],
    { timeout: 20_000 },
  );
  return stdout === 'true';
}

/** A port of the picker's range that this process claims now (not one freePort handed out). */
async function claimSome(): Promise<{ port: number; release(): void }> {
  for (let i = 0; i < 100; i++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    const claim = await claimPort(port);
    if (claim) return { port, release: () => claim.release() };
  }
  throw new Error('no claimable port in 100 tries');
}

describe.skipIf(process.platform !== 'linux')('freePort across processes', () => {
  it('a port handed out here cannot be claimed by another process while this one lives', async () => {
    const port = await freePort(new Set());
    expect(await claimableElsewhere(port)).toBe(false);
  });

  it('a claim this process released can be taken by another process', async () => {
    const { port, release } = await claimSome();
    expect(await claimableElsewhere(port)).toBe(false);
    release();
    expect(await claimableElsewhere(port)).toBe(true);
  });

  it('one process cannot claim the same port twice', async () => {
    const { port } = await claimSome();
    expect(await claimPort(port)).toBeUndefined();
  });
});
