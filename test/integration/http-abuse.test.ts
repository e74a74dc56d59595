/**
 * Issue 18 and issue 21 §3, abuse limits on the HTTP API, one test per limit against a real
 * server: body size, JSON nesting, oversized fields and echoed input, slow clients, connection
 * count, and the log volume a flood of bad requests produces.
 */
import http from 'node:http';
import net from 'node:net';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createHttpApi } from '../../src/api/http.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { cleanupProcesses, type ServerProcess, startServerProcess } from '../helpers/process.js';
import { waitFor, withDeadline } from '../helpers/wait.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});
afterAll(cleanupProcesses);

let shared: ServerProcess | undefined;
async function server(): Promise<ServerProcess> {
  shared ??= await startServerProcess();
  return shared;
}

async function register(s: ServerProcess, body: string) {
  const res = await fetch(s.url('/v1/agent/service/register'), { method: 'PUT', body });
  const text = await res.text();
  const json = (text ? JSON.parse(text) : {}) as { error: string; field?: string };
  return { status: res.status, text, json };
}

/** A PUT that declares `length` body bytes and sends none: the answer the headers alone get. */
function headOnly(port: number, length: number): Promise<{ status: number; text: string }> {
  return withDeadline(
    new Promise((resolve, reject) => {
      const req = http.request(
        { port, host: '127.0.0.1', method: 'PUT', path: '/v1/agent/service/register' },
        (res) => {
          let text = '';
          res.on('data', (d) => (text += String(d)));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        },
      );
      req.on('error', reject);
      req.setHeader('content-length', length);
      req.flushHeaders();
      cleanups.push(() => void req.destroy());
    }),
    { timeoutMs: 10_000, what: 'the answer to a declared oversize body' },
  );
}

const logBytes = (s: ServerProcess) => s.stdoutLines.reduce((n, l) => n + l.length + 1, 0);

/** A raw TCP connection to `port`; resolves `closed` when the server closes it. */
function rawConnection(port: number) {
  const socket = net.connect(port, '127.0.0.1');
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  socket.on('error', () => undefined);
  // Read whatever arrives: a socket whose data is never read never emits 'close'.
  socket.resume();
  cleanups.push(() => void socket.destroy());
  return { socket, closed };
}

describe('HTTP API abuse limits', () => {
  it('refuses a body over --http-max-body-bytes with 413 and a JSON error naming the flag', async () => {
    const s = await server();
    // Refused from the declared length: the body is never read.
    const declared = await headOnly(s.httpPort, 5_000_000);
    expect(declared.status).toBe(413);
    expect(JSON.parse(declared.text)).toEqual({
      error: 'request body is larger than 4194304 bytes (--http-max-body-bytes)',
    });
    // A normal registration still works.
    expect((await register(s, JSON.stringify({ Name: 'web', Port: 80 }))).status).toBe(200);
  }, 60_000);

  it('refuses JSON nested 10,000 deep with 400 naming the problem, never a stack trace', async () => {
    const s = await server();
    for (const deep of [
      '['.repeat(10_000) + ']'.repeat(10_000),
      `${'{"a":'.repeat(5_000)}1${'}'.repeat(5_000)}`,
    ]) {
      const res = await register(s, deep);
      expect(res.status).toBe(400);
      expect(res.json.error).toBe(
        'request body nests objects and arrays more than 64 deep; flatten it',
      );
      expect(res.text).not.toMatch(/\bat .*\.(js|ts):\d+/);
    }
    // 64 deep is still JSON the API reads (and rejects in its own words).
    const ok = await register(s, `{"Name":"web","Meta":${'['.repeat(63)}${']'.repeat(63)}}`);
    expect(ok.status).toBe(400);
    expect(ok.json.error).not.toMatch(/nests/);
  }, 60_000);

  it('refuses a 1 MB Name with 400 and an answer under 1 KB; invalid names are echoed clipped', async () => {
    const s = await server();
    const long = await register(s, JSON.stringify({ Name: 'n'.repeat(1 << 20), Port: 80 }));
    expect(long.status).toBe(400);
    expect(long.json).toEqual({
      error: 'Name: 1048576 characters, more than the 65536 a field may have',
      field: 'Name',
    });
    expect(long.text.length).toBeLessThan(1_024);
    // Under the field cap but still far too long: the validation message quotes it clipped.
    const bad = await register(s, JSON.stringify({ Name: `${'x'.repeat(20_000)}!`, Port: 80 }));
    expect(bad.status).toBe(400);
    expect(bad.json.field).toBe('Name');
    expect(bad.text.length).toBeLessThan(1_024);
  }, 60_000);

  it('bounds the log: a flood of bad requests writes no more than a few KB', async () => {
    const s = await server();
    const before = logBytes(s);
    const bodies = [
      '['.repeat(20_000),
      JSON.stringify({ Name: 'n'.repeat(1 << 20) }),
      `{"Name": "${'\\u0000'.repeat(5_000)}"`,
      JSON.stringify({ Name: 'x'.repeat(70_000) }),
    ];
    for (let round = 0; round < 100; round++) await Promise.all(bodies.map((b) => register(s, b)));
    expect(logBytes(s) - before).toBeLessThan(16 * 1024);
  }, 120_000);

  it('closes a client that never finishes its request head, and one over the connection cap', async () => {
    const app = createHttpApi({
      logger: silentLogger(),
      metrics: new Metrics(),
      health: { ready: () => true, notReady: () => [] },
      xds: { proxyStatus: () => [] },
      limits: { headersTimeoutMs: 300, connectionsCheckingIntervalMs: 100, maxConnections: 2 },
    });
    cleanups.push(() => app.close());
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as net.AddressInfo;

    const slow = rawConnection(port);
    slow.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n');
    await withDeadline(slow.closed, { timeoutMs: 10_000, what: 'the slow client closed' });

    const held = [rawConnection(port), rawConnection(port)];
    for (const c of held) c.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    const answered = held.map(
      (c) => new Promise<string>((resolve) => c.socket.once('data', (d) => resolve(String(d)))),
    );
    for (const c of held) c.socket.resume();
    for (const a of answered)
      expect(await withDeadline(a, { timeoutMs: 10_000, what: 'an answer' })).toMatch(
        /^HTTP\/1.1 200/,
      );
    // Two keep-alive connections are open: a third is closed as it is accepted.
    const third = rawConnection(port);
    await withDeadline(third.closed, { timeoutMs: 10_000, what: 'the third connection closed' });
    // Once they close, the server takes connections again.
    for (const c of held) c.socket.destroy();
    await waitFor(
      async () => (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined))?.ok,
      { timeoutMs: 10_000, what: 'a new connection answered' },
    );
  }, 60_000);
});
