/**
 * Issue 21 §2, signals at any moment (the first rebuild after a start is in
 * restart-readiness.test.ts): a real server, idle or under a burst of registrations, gets SIGTERM
 * or SIGKILL. SIGTERM exits 0 within the grace period (the CLI exits 1 past it); after either, the
 * next start over the same data directory has every registration that was acknowledged, each whole
 * (a service and its sidecar are one transaction).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupProcesses, startServerProcess, tempDir } from '../helpers/process.js';
import { register, serviceName, serviceNames, sidecarId, stopWith } from './fleet.js';

afterAll(cleanupProcesses);

/** Acknowledged writes before the signal: enough that the burst is well under way. */
const ackedBeforeSignal = 40;
/** A bound on the burst, should the process never die. */
const maxWrites = 20_000;

/**
 * Registers services from 8 clients at once until the server stops answering; resolves with the
 * indexes that got 200 and a promise of the burst's end. `onAck` sees each acknowledgement.
 */
function burst(server: Awaited<ReturnType<typeof startServerProcess>>, onAck: (n: number) => void) {
  const acked: number[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < maxWrites) {
      const i = next++;
      const res = await register(server, i).catch(() => undefined);
      if (res?.status !== 200) return;
      acked.push(i);
      onAck(acked.length);
    }
  };
  return { acked, done: Promise.all(Array.from({ length: 8 }, worker)) };
}

/** Every acknowledged service is there after a restart, and nothing is there by halves. */
async function expectKept(dataDir: string, acked: readonly number[]): Promise<void> {
  const server = await startServerProcess([], { dataDir });
  const names = await serviceNames(server);
  for (const i of acked) {
    expect(names.has(serviceName(i)), serviceName(i)).toBe(true);
    expect(names.has(sidecarId(i)), sidecarId(i)).toBe(true);
  }
  for (const name of names) {
    if (/^svc-\d+$/.test(name)) expect(names.has(`${name}-sidecar-proxy`), name).toBe(true);
  }
  expect((await stopWith(server, 'SIGTERM')).code).toBe(0);
}

describe('signals at any moment (real processes)', () => {
  it('idle: SIGTERM exits 0, and after SIGKILL the next start has every registration', async () => {
    const dataDir = tempDir('isthmus-data-');
    const server = await startServerProcess([], { dataDir });
    for (const i of [0, 1, 2]) expect((await register(server, i)).status).toBe(200);
    expect(await stopWith(server, 'SIGTERM')).toMatchObject({ code: 0, signal: null });

    const again = await startServerProcess([], { dataDir });
    expect((await register(again, 3)).status).toBe(200);
    expect((await stopWith(again, 'SIGKILL')).signal).toBe('SIGKILL');
    await expectKept(dataDir, [0, 1, 2, 3]);
  });

  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    it(`under a write burst: ${signal} ${signal === 'SIGTERM' ? 'exits 0 and ' : ''}loses no acknowledged write`, async () => {
      const dataDir = tempDir('isthmus-data-');
      const server = await startServerProcess([], { dataDir });
      let sent: Promise<Awaited<ReturnType<typeof stopWith>>> | undefined;
      const writes = burst(server, (n) => {
        if (n === ackedBeforeSignal) sent = stopWith(server, signal);
      });
      await writes.done;
      expect(sent, 'the burst reached the signal').toBeDefined();
      const exit = await sent!;
      console.log(
        `${signal} under a write burst: ${writes.acked.length} writes acknowledged, exit ${exit.code ?? exit.signal} after ${exit.ms} ms`,
      );
      if (signal === 'SIGTERM') expect(exit).toMatchObject({ code: 0, signal: null });
      else expect(exit.signal).toBe('SIGKILL');
      expect(writes.acked.length).toBeGreaterThanOrEqual(ackedBeforeSignal);
      await expectKept(dataDir, writes.acked);
    });
  }
});
