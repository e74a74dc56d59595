/**
 * Network faults on a peering link (issue 21 §1, docs/architecture.md "Failure modes"): two real
 * `isthmus server` processes whose replication stream runs through a real Toxiproxy. Each fault is
 * put on the link, then healed; the test asserts what an operator sees: the peering goes FAILING
 * with a reason (or stays ACTIVE when the link is only slow), the imported services stay served
 * meanwhile, and after the heal the peering is ACTIVE within 5 s, its LastError cleared, holding
 * exactly what the exporter exports — changes made during the fault included, nothing lost, nothing
 * twice.
 *
 * Heartbeats every 500 ms and a 5 s silence deadline (the defaults are 15 s and 2 min): a black
 * hole is noticed within the deadline, and a 2 s latency is slow, not dead. The figures each fault
 * took are printed, not asserted: deadlines here are generous for a loaded machine.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PeeringJson } from '../../src/api/peering-routes.js';
import { type ServerProcess, cleanupProcesses, startServerProcess } from '../helpers/process.js';
import {
  type FaultyLink,
  type ToxiproxyServer,
  skipWithoutToxiproxy,
  startToxiproxy,
} from '../helpers/toxiproxy.js';
import { waitFor } from '../helpers/wait.js';

const heartbeatArgs = ['--peering-heartbeat-ms', '500', '--peering-heartbeat-timeout-ms', '5000'];
/** The bound: ACTIVE again within 5 s of the heal. */
const healBoundMs = 5_000;
/** How long a fault may take to show as FAILING on a loaded machine (deadline 5 s + slack). */
const failingDeadlineMs = 20_000;

let toxiproxy: ToxiproxyServer;
let a: ServerProcess;
let b: ServerProcess;
let peering: FaultyLink;
/** What A exports now: B must end up with exactly these instance IDs after every heal. */
const exported = new Set<string>();
let nextInstance = 1;
const figures: string[] = [];

async function call<T = any>(
  s: ServerProcess,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: T; text: string }> {
  const init: RequestInit = { method };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = { 'content-type': 'application/json' };
  }
  const res = await fetch(s.url(path), init);
  const text = await res.text();
  return {
    status: res.status,
    body: text && res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : undefined,
    text,
  };
}

const peeringOf = async (s: ServerProcess, name: string) =>
  (await call<PeeringJson>(s, 'GET', `/v1/peering/${name}`)).body;
const importedIds = async () =>
  ((await call<any[]>(b, 'GET', '/v1/health/service/api?peer=cluster-a')).body ?? [])
    .map((e) => e.Service.ID as string)
    .sort();
const expectedIds = () => [...exported].sort();

async function addInstance(): Promise<void> {
  const id = `api-${nextInstance++}`;
  const res = await call(a, 'PUT', '/v1/agent/service/register', {
    ID: id,
    Name: 'api',
    Address: '10.0.1.1',
    Port: 8080 + nextInstance,
  });
  expect(res.status, res.text).toBe(200);
  exported.add(id);
}

async function removeInstance(): Promise<void> {
  const [id] = exported;
  if (!id) return;
  const res = await call(a, 'PUT', `/v1/agent/service/deregister/${id}`);
  expect(res.status, res.text).toBe(200);
  exported.delete(id);
}

/** Waits until B is in `state` and returns the peering and how long it took. */
async function untilState(state: string, timeoutMs: number, what: string) {
  const t0 = Date.now();
  const p = await waitFor(
    async () => {
      const now = await peeringOf(b, 'cluster-a');
      return now.State === state && now;
    },
    { timeoutMs, intervalMs: 25, what },
  );
  return { peering: p, ms: Date.now() - t0 };
}

/** Heals the link; B must be ACTIVE within the bound and hold exactly A's exports. */
async function healAndCheck(fault: string): Promise<void> {
  await peering.heal();
  const { ms, peering: healed } = await untilState(
    'ACTIVE',
    30_000,
    `B ACTIVE after healing ${fault}`,
  );
  figures.push(`${fault}: ACTIVE ${ms} ms after the heal`);
  expect(healed.StreamStatus.LastError, 'a recovered peering shows no old error').toBe('');
  expect(ms, `ACTIVE within ${healBoundMs} ms of healing ${fault}`).toBeLessThanOrEqual(
    healBoundMs,
  );
  await waitFor(async () => (await importedIds()).join() === expectedIds().join(), {
    timeoutMs: 15_000,
    intervalMs: 50,
    what: `B to hold exactly A's exports after ${fault}`,
  });
  expect(await importedIds()).toEqual(expectedIds());
}

/** A fault that breaks the stream: FAILING with a reason, imports kept, changes replayed. */
async function breaksThenHeals(fault: string, inject: () => Promise<void>): Promise<void> {
  const before = await importedIds();
  expect(before).toEqual(expectedIds());
  const t0 = Date.now();
  await inject();
  const { peering: failing } = await untilState(
    'FAILING',
    failingDeadlineMs,
    `B FAILING (${fault})`,
  );
  figures.push(`${fault}: FAILING ${Date.now() - t0} ms after the fault`);
  expect(failing.StreamStatus.LastError, 'FAILING says why').not.toBe('');
  expect(failing.Healthy).toBe(false);
  // Imported services stay served while the peer is unreachable.
  expect(await importedIds()).toEqual(before);
  // The exporter changes while the link is down: both changes must arrive after the heal.
  await addInstance();
  await removeInstance();
  await healAndCheck(fault);
}

/** A fault that only slows the link: ACTIVE throughout, and a change still replicates. */
async function slowButAlive(fault: string, inject: () => Promise<void>): Promise<void> {
  await inject();
  const t0 = Date.now();
  await addInstance();
  await waitFor(async () => (await importedIds()).join() === expectedIds().join(), {
    timeoutMs: 30_000,
    intervalMs: 100,
    what: `a change to replicate over the slowed link (${fault})`,
  });
  figures.push(`${fault}: a change replicated in ${Date.now() - t0} ms, ACTIVE throughout`);
  expect((await peeringOf(b, 'cluster-a')).State).toBe('ACTIVE');
  await healAndCheck(fault);
}

describe.skipIf(skipWithoutToxiproxy())('a peering link under network faults (Toxiproxy)', () => {
  beforeAll(async () => {
    toxiproxy = await startToxiproxy();
    a = await startServerProcess(['--datacenter', 'dc-a', ...heartbeatArgs]);
    b = await startServerProcess(['--datacenter', 'dc-b', ...heartbeatArgs]);
    peering = await toxiproxy.proxy('peering', `127.0.0.1:${a.peeringPort}`);
    const token = await call(a, 'POST', '/v1/peering/token', {
      PeerName: 'cluster-b',
      ServerExternalAddresses: [peering.listen],
    });
    expect(token.status, token.text).toBe(200);
    const est = await call(b, 'POST', '/v1/peering/establish', {
      PeerName: 'cluster-a',
      PeeringToken: token.body.PeeringToken,
    });
    expect(est.status, est.text).toBe(200);
    await untilState('ACTIVE', 20_000, 'B ACTIVE through the proxy');
    await addInstance();
    await addInstance();
    const exports = await call(a, 'PUT', '/v1/config', {
      Kind: 'exported-services',
      Name: 'default',
      Services: [{ Name: 'api', Consumers: [{ Peer: 'cluster-b' }] }],
    });
    expect(exports.status, exports.text).toBe(200);
    await waitFor(async () => (await importedIds()).join() === expectedIds().join(), {
      timeoutMs: 20_000,
      intervalMs: 50,
      what: "A's api in B",
    });
  }, 90_000);

  afterAll(async () => {
    if (figures.length > 0) console.log(`peering link faults:\n  ${figures.join('\n  ')}`);
    await toxiproxy?.stop();
    await cleanupProcesses();
  });

  it('a partition: FAILING with the reason, imports kept; ACTIVE within 5 s of the heal with every change made meanwhile', async () => {
    await breaksThenHeals('partition', () => peering.cut());
  });

  it('a black hole (timeout toxic, no data either way): FAILING through the heartbeat deadline; healed like a partition', async () => {
    await breaksThenHeals('black hole', async () => {
      await peering.add({
        name: 'hole-down',
        type: 'timeout',
        stream: 'downstream',
        attributes: { timeout: 0 },
      });
      await peering.add({
        name: 'hole-up',
        type: 'timeout',
        stream: 'upstream',
        attributes: { timeout: 0 },
      });
    });
  });

  it('reset_peer: every connection reset; FAILING with the error, healed like a partition', async () => {
    await breaksThenHeals('reset_peer', () =>
      peering.add({
        name: 'reset',
        type: 'reset_peer',
        stream: 'downstream',
        attributes: { timeout: 0 },
      }),
    );
  });

  it('2 s of latency each way: slow, not dead — ACTIVE throughout and changes still replicate', async () => {
    await slowButAlive('latency 2 s', async () => {
      await peering.add({
        name: 'slow-down',
        type: 'latency',
        stream: 'downstream',
        attributes: { latency: 2_000, jitter: 0 },
      });
      await peering.add({
        name: 'slow-up',
        type: 'latency',
        stream: 'upstream',
        attributes: { latency: 2_000, jitter: 0 },
      });
    });
  });

  it('10 KB/s each way: ACTIVE throughout and changes still replicate', async () => {
    await slowButAlive('bandwidth 10 KB/s', async () => {
      await peering.add({
        name: 'thin-down',
        type: 'bandwidth',
        stream: 'downstream',
        attributes: { rate: 10 },
      });
      await peering.add({
        name: 'thin-up',
        type: 'bandwidth',
        stream: 'upstream',
        attributes: { rate: 10 },
      });
    });
  });

  it('packets sliced into small pieces with delays: ACTIVE throughout, changes arrive intact', async () => {
    await slowButAlive('slicer', async () => {
      const attributes = { average_size: 64, size_variation: 32, delay: 200 };
      await peering.add({ name: 'slice-down', type: 'slicer', stream: 'downstream', attributes });
      await peering.add({ name: 'slice-up', type: 'slicer', stream: 'upstream', attributes });
    });
  });

  it('establishing against an address that never answers fails within the exchange deadline with a clear error and leaves no peering', async () => {
    const hole = await toxiproxy.proxy('never-answers', `127.0.0.1:${a.peeringPort}`);
    await hole.add({
      name: 'hole',
      type: 'timeout',
      stream: 'downstream',
      attributes: { timeout: 0 },
    });
    const token = await call(a, 'POST', '/v1/peering/token', {
      PeerName: 'cluster-x',
      ServerExternalAddresses: [hole.listen],
    });
    expect(token.status, token.text).toBe(200);
    const t0 = Date.now();
    const est = await call(b, 'POST', '/v1/peering/establish', {
      PeerName: 'cluster-x',
      PeeringToken: token.body.PeeringToken,
    });
    figures.push(`establish against a black hole: ${est.status} after ${Date.now() - t0} ms`);
    expect(est.status).toBe(503);
    expect(est.text).toMatch(/cannot exchange the peering secret/);
    expect(est.text).toMatch(/check that the peer server is running/);
    expect((await call(b, 'GET', '/v1/peering/cluster-x')).status).toBe(404);
    // The real peering is untouched.
    expect((await peeringOf(b, 'cluster-a')).State).toBe('ACTIVE');
  });
});
