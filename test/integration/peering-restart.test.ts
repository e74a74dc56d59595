/**
 * Peering across process deaths: two real `isthmus server` processes on loopback (real TLS on the
 * peering port). The acceptor is killed with SIGKILL and restarted on the same data dir and port;
 * the dialer is restarted; the acceptor is frozen (SIGSTOP: the TCP connection stays, heartbeats
 * stop).
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { PeeringJson } from '../../src/api/peering-routes.js';
import {
  type ServerProcess,
  cleanupProcesses,
  freePort,
  startServerProcess,
} from '../helpers/process.js';
import { waitFor, withDeadline } from '../helpers/wait.js';

afterAll(cleanupProcesses);

/** Short heartbeats, so a silent peer is noticed within a couple of seconds. */
const heartbeatArgs = ['--peering-heartbeat-ms', '200', '--peering-heartbeat-timeout-ms', '1500'];

async function call<T = any>(
  s: ServerProcess,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: T; text: string }> {
  const init: RequestInit = { method };
  if (body !== undefined) init.body = JSON.stringify(body);
  if (body !== undefined) init.headers = { 'content-type': 'application/json' };
  const res = await fetch(s.url(path), init);
  const text = await res.text();
  return {
    status: res.status,
    body: text && res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : undefined,
    text,
  };
}

const read = async (s: ServerProcess, name: string) =>
  (await call<PeeringJson>(s, 'GET', `/v1/peering/${name}`)).body;
const imported = async (s: ServerProcess) =>
  ((await call<any[]>(s, 'GET', '/v1/health/service/api?peer=cluster-a')).body ?? [])
    .map((e) => e.Service.ID)
    .sort();
const healthyGauge = async (s: ServerProcess) =>
  /isthmus_peering_healthy\{peer_name="cluster-a"\} (\d)/.exec(
    (await call(s, 'GET', '/metrics')).text,
  )?.[1];

async function kill(s: ServerProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  s.child.kill(signal);
  await withDeadline(s.exited, { timeoutMs: 15_000, what: `server to exit on ${signal}` });
}

describe('peering across restarts (two server processes)', () => {
  it('kill -9 of the acceptor: B FAILING with the error and healthy 0, imports kept; ACTIVE again after the restart; a restarted dialer reconnects alone; a frozen acceptor turns B FAILING', async () => {
    const port = await freePort();
    const aArgs = ['--datacenter', 'dc-a', '--peering-addr', `127.0.0.1:${port}`, ...heartbeatArgs];
    const bArgs = ['--datacenter', 'dc-b', ...heartbeatArgs];
    let a = await startServerProcess(aArgs);
    let b = await startServerProcess(bArgs);
    const firstRun = [a, b];
    expect(a.peeringPort).toBe(port);

    const token = await call(a, 'POST', '/v1/peering/token', { PeerName: 'cluster-b' });
    expect(
      (
        await call(b, 'POST', '/v1/peering/establish', {
          PeerName: 'cluster-a',
          PeeringToken: token.body.PeeringToken,
        })
      ).status,
    ).toBe(200);
    await waitFor(async () => (await read(b, 'cluster-a')).State === 'ACTIVE', {
      timeoutMs: 10_000,
      intervalMs: 20,
      what: 'B ACTIVE',
    });
    await call(a, 'PUT', '/v1/agent/service/register', {
      ID: 'api-1',
      Name: 'api',
      Address: '10.0.1.1',
      Port: 8080,
    });
    await call(a, 'PUT', '/v1/config', {
      Kind: 'exported-services',
      Name: 'default',
      Services: [{ Name: 'api', Consumers: [{ Peer: 'cluster-b' }] }],
    });
    await waitFor(async () => (await imported(b)).join() === 'api-1', {
      timeoutMs: 10_000,
      intervalMs: 20,
      what: 'api in B',
    });
    await waitFor(async () => (await healthyGauge(b)) === '1', {
      timeoutMs: 10_000,
      what: 'healthy 1 in B',
    });

    // kill -9 of the acceptor.
    await kill(a);
    const failing = await waitFor(
      async () => {
        const p = await read(b, 'cluster-a');
        return p.State === 'FAILING' && p;
      },
      { timeoutMs: 10_000, intervalMs: 20, what: 'B FAILING' },
    );
    expect(failing.StreamStatus.LastError).not.toBe('');
    expect(failing.Healthy).toBe(false);
    expect(await healthyGauge(b)).toBe('0');
    expect(await imported(b)).toEqual(['api-1']);
    expect(failing.StreamStatus.ImportedServices).toEqual(['api']);

    // Down for a while (the dialer's backoff grows), then back on the same data dir and port.
    await new Promise((resolve) => setTimeout(resolve, 10_000));
    expect((await read(b, 'cluster-a')).State).toBe('FAILING');
    a = await startServerProcess(aArgs, { dataDir: a.dataDir });
    await waitFor(async () => (await read(b, 'cluster-a')).State === 'ACTIVE', {
      // The dialer redials every 1.25–2.5 s (peeringBackoff), so this is ACTIVE about 3 s after
      // the restart; the deadline leaves room for a loaded machine.
      timeoutMs: 15_000,
      intervalMs: 20,
      what: 'B ACTIVE after the restart',
    });
    expect(await imported(b)).toEqual(['api-1']);

    // Restart of the dialer: counts are right at once, and it reconnects by itself.
    await kill(b, 'SIGTERM');
    b = await startServerProcess(bArgs, { dataDir: b.dataDir });
    const first = await read(b, 'cluster-a');
    expect(first.StreamStatus.ImportedServices).toEqual(['api']);
    expect(await imported(b)).toEqual(['api-1']);
    await waitFor(
      async () =>
        (await read(b, 'cluster-a')).State === 'ACTIVE' && (await healthyGauge(b)) === '1',
      { timeoutMs: 15_000, intervalMs: 20, what: 'the restarted dialer ACTIVE' },
    );
    await waitFor(async () => (await read(a, 'cluster-b')).State === 'ACTIVE', {
      timeoutMs: 15_000,
      intervalMs: 20,
      what: 'A ACTIVE with the restarted dialer',
    });

    // A frozen acceptor keeps the TCP connection but sends no heartbeats: B turns FAILING.
    a.child.kill('SIGSTOP');
    try {
      const silent = await waitFor(
        async () => {
          const p = await read(b, 'cluster-a');
          return p.State === 'FAILING' && p;
        },
        { timeoutMs: 10_000, intervalMs: 50, what: 'B FAILING after the acceptor went silent' },
      );
      expect(silent.StreamStatus.LastError).toMatch(/heartbeat|silen|message/i);
    } finally {
      a.child.kill('SIGCONT');
    }
    await waitFor(async () => (await read(b, 'cluster-a')).State === 'ACTIVE', {
      timeoutMs: 10_000,
      intervalMs: 50,
      what: 'B ACTIVE after the acceptor resumed',
    });

    // Logs never carry the token, its establishment secret or a private key.
    const secret = (
      JSON.parse(Buffer.from(token.body.PeeringToken, 'base64').toString()) as {
        EstablishmentSecret: string;
      }
    ).EstablishmentSecret;
    for (const s of [...firstRun, a, b]) {
      const logs = s.stdoutLines.join('\n') + s.stderr();
      expect(logs).not.toContain(token.body.PeeringToken);
      expect(logs).not.toContain(secret);
      expect(logs).not.toContain('PRIVATE KEY');
    }
  }, 150_000);
});
