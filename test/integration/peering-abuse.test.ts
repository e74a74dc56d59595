/**
 * Issue 18 and issue 21 §3, abuse limits on the peering port against a real `isthmus server`
 * process and a hand-driven test dialer: a heartbeat flood neither stalls local writes nor turns
 * into one Store write per heartbeat; a recovered peering clears its LastError; oversize messages
 * are refused from their length; a flood of refused exchanges writes a bounded log.
 * (Streams that never send Open and the pending-stream cap: test/integration/peering-stream.)
 */
import * as grpc from '@grpc/grpc-js';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { ReplicationMessage } from '../../src/gen/isthmus/peering/v1/peering.js';
import { dialPeer } from '../../src/peering/dial.js';
import { cleanupProcesses, type ServerProcess, startServerProcess } from '../helpers/process.js';
import { dialAsTestPeer, floodHeartbeats, type TestPeer } from '../helpers/test-peer.js';
import { waitFor, withDeadline } from '../helpers/wait.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});
afterAll(cleanupProcesses);

interface PeeringJson {
  State: string;
  ModifyIndex: number;
  StreamStatus: { LastHeartbeat: string | null; LastError: string };
}

async function api(s: ServerProcess, method: string, path: string, body?: unknown) {
  const res = await fetch(s.url(path), {
    method,
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return { status: res.status, body: text ? (JSON.parse(text) as unknown) : undefined };
}

const peering = async (s: ServerProcess, name: string) =>
  (await api(s, 'GET', `/v1/peering/${name}`)).body as PeeringJson;

async function testPeer(s: ServerProcess, name: string): Promise<TestPeer> {
  const peer = await dialAsTestPeer((m, p, b) => api(s, m, p, b), name);
  cleanups.push(() => peer.close());
  await waitFor(async () => (await peering(s, name)).State === 'ACTIVE', {
    timeoutMs: 10_000,
    what: `${name} ACTIVE`,
  });
  return peer;
}

const logBytes = (s: ServerProcess) => s.stdoutLines.reduce((n, l) => n + l.length + 1, 0);

describe('peering port abuse limits', () => {
  it('a heartbeat flood costs a few Store writes a second: local writes complete, the peering stays ACTIVE', async () => {
    const s = await startServerProcess();
    const peer = await testPeer(s, 'flood');
    const before = await peering(s, 'flood');
    const flood = floodHeartbeats(peer.stream, 20_000);
    for (let i = 0; i < 30; i++)
      await api(s, 'PUT', '/v1/agent/service/register', { Name: `local-${i}`, Port: 8080 });
    await withDeadline(flood, { timeoutMs: 120_000, what: '20,000 heartbeats written' });
    // The last heartbeat's time reaches the Store within a second of the flood's end.
    const after = await waitFor(
      async () => {
        const p = await peering(s, 'flood');
        return Date.parse(p.StreamStatus.LastHeartbeat ?? '') >= Date.now() - 5_000 && p;
      },
      { timeoutMs: 10_000, what: 'the last heartbeat recorded' },
    );
    expect(after.State).toBe('ACTIVE');
    // ModifyIndex is the Store revision of the record's last write, so it counts every write
    // made meanwhile: the registrations' and about one a second for the peering, not 20,000.
    expect(after.ModifyIndex - before.ModifyIndex).toBeLessThan(1_000);
    const services = (await api(s, 'GET', '/v1/catalog/services')).body as Record<string, unknown>;
    expect(Object.keys(services).filter((n) => n.startsWith('local-'))).toHaveLength(30);
  }, 180_000);

  it('a peering that recovered no longer shows its old LastError', async () => {
    const s = await startServerProcess();
    const peer = await testPeer(s, 'flaky');
    peer.close();
    const failing = await waitFor(
      async () => {
        const p = await peering(s, 'flaky');
        return p.State === 'FAILING' && p;
      },
      { timeoutMs: 10_000, what: 'flaky FAILING' },
    );
    expect(failing.StreamStatus.LastError).not.toBe('');
    const again = await peer.reopen();
    cleanups.push(() => again.close());
    const recovered = await waitFor(
      async () => {
        const p = await peering(s, 'flaky');
        return p.State === 'ACTIVE' && p;
      },
      { timeoutMs: 10_000, what: 'flaky ACTIVE again' },
    );
    expect(recovered.StreamStatus.LastError).toBe('');
  }, 60_000);

  it('refuses oversize messages from their length, and a flood of refused exchanges writes a bounded log', async () => {
    const s = await startServerProcess();
    const peer = await testPeer(s, 'big');
    const client = dialPeer(peer.target);
    cleanups.push(() => client.close());
    const huge = 'p'.repeat(6 * 1024 * 1024);
    const exchange = (peerId: string) =>
      new Promise<grpc.ServiceError | null>((resolve) =>
        client.exchangeSecret(
          {
            peerId,
            establishmentSecret: 'not-the-secret',
            dialerRootPems: [],
            dialerTrustDomain: 'x.consul',
          },
          (err: grpc.ServiceError | null) => resolve(err),
        ),
      );
    expect((await exchange(huge))?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    const stream = client.streamResources();
    stream.on('data', () => undefined);
    const status = new Promise<grpc.StatusObject>((resolve) => stream.on('status', resolve));
    stream.on('error', () => undefined);
    stream.write(
      ReplicationMessage.fromPartial({
        payload: { $case: 'open', value: { peerId: huge, streamSecret: 'x' } },
      }),
    );
    expect((await withDeadline(status, { timeoutMs: 20_000, what: 'refused' })).code).toBe(
      grpc.status.RESOURCE_EXHAUSTED,
    );

    // 400 refused exchanges, each naming a 100 KB peer: the log grows by a few KB.
    const before = logBytes(s);
    const long = 'q'.repeat(100_000);
    for (let round = 0; round < 20; round++)
      await Promise.all(Array.from({ length: 20 }, () => exchange(long)));
    await waitFor(() => s.stdoutLines.some((l) => l.includes('dropped')), {
      timeoutMs: 10_000,
      what: 'the dropped-lines report',
    });
    expect(logBytes(s) - before).toBeLessThan(64 * 1024);
    expect((await peering(s, 'big')).State).toBe('ACTIVE');
  }, 120_000);
});
