/**
 * The peering replication stream over real grpc-js with real mutual TLS on 127.0.0.1 (issue 4 §3
 * "Stream"): Open first, verified by the authority with the client certificate; one active stream
 * per peering; every response ACKed or NACKed; heartbeats and the silence deadline; Terminated; the
 * dialer's reconnects.
 */
import * as grpc from '@grpc/grpc-js';
import { Writable } from 'node:stream';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  ExportedService,
  ExportedServiceList,
  PeeringServiceClient,
  PeeringServiceService,
  ReplicationMessage,
  ServerAddresses,
  TrustBundle,
} from '../../src/gen/isthmus/peering/v1/peering.js';
import { createLogger, type Logger } from '../../src/log.js';
import {
  dialerChannelOptions,
  dialerCredentials,
  dialStream,
  PeeringServerCredentials,
  ResourceUrl,
  StreamAcceptor,
  type DialOptions,
  type StreamDialer,
  type StreamTimings,
} from '../../src/peering/stream/index.js';
import {
  FakeAuthority,
  makePki,
  MemorySource,
  RecordingObserver,
  RecordingSink,
  strangerLeaf,
  type Pki,
} from '../helpers/peering-stream.js';
import { waitFor, withDeadline } from '../helpers/wait.js';
import { peeringServerChannelOptions } from '../../src/peering/server.js';

const peerId = 'a1b2c3d4-0000-4000-8000-000000000001';
const streamSecret = 'stream-secret-5f1c9e0b7a';
const remote = { partition: 'default', datacenter: 'dc2' };

interface Side {
  readonly source: MemorySource;
  readonly sink: RecordingSink;
  readonly observer: RecordingObserver;
}

const side = (): Side => ({
  source: new MemorySource(),
  sink: new RecordingSink(),
  observer: new RecordingObserver(),
});

interface AcceptorHarness {
  readonly server: grpc.Server;
  readonly acceptor: StreamAcceptor;
  readonly port: number;
  /** Peerings bound so far (one per accepted stream). */
  readonly bound: string[];
}

let pki: Pki;
let logs: string[];
let logger: Logger;
const cleanups: (() => Promise<void> | void)[] = [];

beforeAll(async () => {
  pki = await makePki();
});

afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
  // No secret material ever reaches a log line, whatever a test did.
  const all = logs.join('');
  expect(all).not.toContain(streamSecret);
  expect(all).not.toContain('PRIVATE KEY');
});

function freshLogger(): void {
  logs = [];
  logger = createLogger(
    'debug',
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        logs.push(chunk.toString());
        cb();
      },
    }),
  );
}
freshLogger();

function newAuthority(): FakeAuthority {
  const authority = new FakeAuthority();
  authority.peerings.set(peerId, {
    name: 'dialer-peer',
    secret: streamSecret,
    rootPems: [pki.dialerRoot.certPem],
  });
  return authority;
}

async function startAcceptor(opts: {
  authority: FakeAuthority;
  local: Side;
  port?: number;
  timings?: StreamTimings;
  maxPendingStreams?: number;
}): Promise<AcceptorHarness> {
  const bound: string[] = [];
  const acceptor = new StreamAcceptor({
    authority: opts.authority,
    bind: (peer) => {
      bound.push(peer.peeringName);
      return opts.local;
    },
    logger,
    ...opts.timings,
    ...(opts.maxPendingStreams === undefined ? {} : { maxPendingStreams: opts.maxPendingStreams }),
  });
  const server = new grpc.Server(peeringServerChannelOptions);
  server.addService(PeeringServiceService, {
    exchangeSecret: (_call: unknown, cb: grpc.sendUnaryData<never>) =>
      cb({ code: grpc.status.UNIMPLEMENTED }),
    streamResources: acceptor.handler,
  });
  // The server trusts every pinned dialer root; the authority checks the one of the peering.
  const creds = new PeeringServerCredentials({
    ...pki.server,
    clientCaPems: [pki.dialerRoot.certPem],
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`127.0.0.1:${opts.port ?? 0}`, creds, (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  cleanups.push(async () => {
    await acceptor.close();
    server.forceShutdown();
  });
  return { server, acceptor, port, bound };
}

function dial(port: number, local: Side, overrides: Partial<DialOptions> = {}): StreamDialer {
  const dialer = dialStream({
    peeringName: 'acceptor-peer',
    addresses: [`127.0.0.1:${port}`],
    serverName: pki.serverName,
    caPems: [pki.acceptorRoot.certPem],
    ...pki.client,
    open: { peerId, streamSecret, remote },
    ...local,
    backoff: { baseMs: 50, maxMs: 400 },
    logger,
    ...overrides,
  });
  cleanups.push(() => dialer.stop({ graceMs: 500 }));
  return dialer;
}

/** A hand-driven client stream: whatever it writes, nothing else. */
function rawStream(port: number, client: { certPem: string; keyPem: string } = pki.client) {
  const c = new PeeringServiceClient(
    `127.0.0.1:${port}`,
    dialerCredentials({
      caPems: [pki.acceptorRoot.certPem],
      serverName: pki.serverName,
      ...client,
    }),
    dialerChannelOptions(pki.serverName),
  );
  const call = c.streamResources();
  const received: ReplicationMessage[] = [];
  call.on('data', (m: ReplicationMessage) => received.push(m));
  call.on('error', () => undefined);
  const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
  cleanups.push(() => {
    call.cancel();
    c.close();
  });
  const open = (secret = streamSecret, id = peerId) =>
    call.write(
      ReplicationMessage.fromPartial({
        payload: { $case: 'open', value: { peerId: id, streamSecret: secret, remote } },
      }),
    );
  return {
    call,
    received,
    status: withDeadline(status, { timeoutMs: 5_000, what: 'the stream status' }),
    open,
  };
}

const bundle = (trustDomain: string) =>
  TrustBundle.fromPartial({ trustDomain, rootPems: [`${trustDomain} root`] });
const serviceList = (...names: string[]) =>
  ExportedServiceList.fromPartial({
    services: names.map((name) => ({ name, namespace: 'default', partition: 'default' })),
  });
const service = (name: string, port: number) =>
  ExportedService.fromPartial({
    service: { name, namespace: 'default', partition: 'default' },
    instances: [{ id: `${name}-1`, name, address: '10.0.0.5', port, health: 'passing' }],
  });
const soon = { timeoutMs: 5_000 };

describe('peering stream over mutual TLS', () => {
  it('replicates both ways after Open, ACKs every response, and delivers later changes and deletes', async () => {
    const a = side();
    const d = side();
    a.source.set(ResourceUrl.trustBundle, 'acceptor.consul', bundle('acceptor.consul'));
    a.source.set(
      ResourceUrl.serverAddresses,
      'server',
      ServerAddresses.fromPartial({ addresses: ['192.0.2.1:8503'] }),
    );
    a.source.set(ResourceUrl.exportedServiceList, 'list', serviceList('api'));
    d.source.set(ResourceUrl.trustBundle, 'dialer.consul', bundle('dialer.consul'));
    d.source.set(ResourceUrl.exportedServiceList, 'list', serviceList('billing', 'web'));
    const h = await startAcceptor({ authority: newAuthority(), local: a });
    const dialer = dial(h.port, d);

    await waitFor(
      () =>
        a.sink.has(ResourceUrl.exportedServiceList, 'list') &&
        d.sink.has(ResourceUrl.exportedServiceList, 'list'),
      { ...soon, what: 'both lists' },
    );
    expect(d.sink.get(ResourceUrl.trustBundle, 'acceptor.consul')).toMatchObject({
      trustDomain: 'acceptor.consul',
      rootPems: ['acceptor.consul root'],
    });
    expect(d.sink.get(ResourceUrl.serverAddresses, 'server')).toMatchObject({
      addresses: ['192.0.2.1:8503'],
    });
    expect(a.sink.get(ResourceUrl.trustBundle, 'dialer.consul')).toMatchObject({
      trustDomain: 'dialer.consul',
    });
    expect(a.sink.get(ResourceUrl.exportedServiceList, 'list')).toMatchObject({
      services: [{ name: 'billing' }, { name: 'web' }],
    });
    expect(h.bound).toEqual(['dialer-peer']);
    expect(h.acceptor.isActive('dialer-peer')).toBe(true);
    expect(dialer.isActive).toBe(true);
    expect(a.observer.count('active')).toBe(1);
    expect(d.observer.count('active')).toBe(1);

    a.source.set(ResourceUrl.exportedService, 'api', service('api', 8080));
    await waitFor(() => d.sink.has(ResourceUrl.exportedService, 'api'), {
      ...soon,
      what: 'a new exported service',
    });
    expect(d.sink.get(ResourceUrl.exportedService, 'api')).toMatchObject({
      instances: [{ id: 'api-1', port: 8080, health: 'passing' }],
    });
    a.source.set(ResourceUrl.exportedService, 'api', service('api', 9090));
    await waitFor(
      () =>
        (d.sink.get(ResourceUrl.exportedService, 'api') as ExportedService | undefined)
          ?.instances[0]?.port === 9090,
      { ...soon, what: 'the change' },
    );
    a.source.delete(ResourceUrl.exportedService, 'api');
    await waitFor(() => !d.sink.has(ResourceUrl.exportedService, 'api'), {
      ...soon,
      what: 'the delete',
    });

    await waitFor(
      () => h.acceptor.stats('dialer-peer')?.outstanding === 0 && dialer.stats()?.outstanding === 0,
      { ...soon, what: 'every response settled' },
    );
    expect(h.acceptor.stats('dialer-peer')).toMatchObject({
      responsesSent: 6,
      acked: 6,
      nacked: 0,
    });
    expect(dialer.stats()).toMatchObject({ responsesSent: 2, acked: 2, nacked: 0 });
    expect(
      d.sink.applied.map((x) => `${x.change.operation} ${x.change.resourceId}`).slice(-3),
    ).toEqual(['upsert api', 'upsert api', 'delete api']);
    expect(a.observer.received).toBeGreaterThan(0);
    expect(d.observer.sent).toBeGreaterThan(0);
  });

  it('NACKs a response the sink rejects with its message; the sender sees it and the stream stays up', async () => {
    const a = side();
    const d = side();
    d.sink.reject = (_url, change) =>
      change.resourceId === 'broken' ? 'ExportedService broken: no instances' : undefined;
    const h = await startAcceptor({ authority: newAuthority(), local: a });
    const dialer = dial(h.port, d);
    await waitFor(() => dialer.isActive, { ...soon, what: 'the stream' });

    a.source.set(ResourceUrl.exportedService, 'broken', service('broken', 1));
    await waitFor(() => a.observer.last('nack'), { ...soon, what: 'the NACK at the sender' });
    expect(a.observer.last('nack')?.message).toBe('ExportedService broken: no instances');
    expect(h.acceptor.stats('dialer-peer')).toMatchObject({
      nacked: 1,
      lastNack: { message: 'ExportedService broken: no instances' },
    });

    a.source.set(ResourceUrl.exportedService, 'fine', service('fine', 2));
    await waitFor(() => d.sink.has(ResourceUrl.exportedService, 'fine'), {
      ...soon,
      what: 'a later service',
    });
    expect(a.observer.count('failing') + d.observer.count('failing')).toBe(0);
    expect(h.acceptor.isActive('dialer-peer') && dialer.isActive).toBe(true);
  });

  it('refuses a stream whose first message is not Open with INVALID_ARGUMENT', async () => {
    const a = side();
    const h = await startAcceptor({ authority: newAuthority(), local: a });
    const raw = rawStream(h.port);
    raw.call.write(ReplicationMessage.fromPartial({ payload: { $case: 'heartbeat', value: {} } }));
    const status = await raw.status;
    expect(status.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(status.details).toBe(
      'the first message of a peering stream must be Open, not heartbeat',
    );
    expect(h.bound).toEqual([]);
  });

  it('closes a stream that sends no Open within the bound with DEADLINE_EXCEEDED', async () => {
    const a = side();
    const h = await startAcceptor({
      authority: newAuthority(),
      local: a,
      timings: { openTimeoutMs: 300 },
    });
    const raw = rawStream(h.port);
    const status = await raw.status;
    expect(status.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(status.details).toBe('no verified Open within 300 ms');
    expect(h.bound).toEqual([]);
  });

  it('refuses streams beyond the pending cap with RESOURCE_EXHAUSTED; a real peer gets in once they go', async () => {
    const a = side();
    const h = await startAcceptor({
      authority: newAuthority(),
      local: a,
      timings: { openTimeoutMs: 1_500 },
      maxPendingStreams: 3,
    });
    const silent = [rawStream(h.port), rawStream(h.port), rawStream(h.port)];
    // Each stream is pending once its headers reached the server: wait for the first refusal.
    const over = await waitFor(
      async () => {
        const extra = rawStream(h.port);
        const s = await extra.status;
        return s.code === grpc.status.RESOURCE_EXHAUSTED && s;
      },
      { timeoutMs: 10_000, what: 'a stream over the pending cap refused' },
    );
    expect(over.details).toBe(
      '3 peering streams are already waiting for a verified Open; retry later',
    );
    for (const s of silent) expect((await s.status).code).toBe(grpc.status.DEADLINE_EXCEEDED);
    const b = side();
    const dialer = dial(h.port, b);
    await waitFor(() => dialer.isActive, { timeoutMs: 10_000, what: 'the real dialer active' });
  });

  it('refuses a message over the receive limit from its length', async () => {
    const a = side();
    const h = await startAcceptor({ authority: newAuthority(), local: a });
    const raw = rawStream(h.port);
    raw.open(streamSecret, 'p'.repeat(5 * 1024 * 1024));
    const status = await raw.status;
    expect(status.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(h.bound).toEqual([]);
  });

  it('refuses a wrong stream secret, an unpinned client certificate and an unknown peer, sending nothing', async () => {
    const a = side();
    a.source.set(ResourceUrl.trustBundle, 'acceptor.consul', bundle('acceptor.consul'));
    const authority = newAuthority();
    const h = await startAcceptor({ authority, local: a });

    const wrong = rawStream(h.port);
    wrong.open('not-the-secret');
    expect(await wrong.status).toMatchObject({
      code: grpc.status.PERMISSION_DENIED,
      details: 'invalid stream secret',
    });

    const stranger = rawStream(h.port, await strangerLeaf());
    stranger.open();
    expect(await stranger.status).toMatchObject({
      code: grpc.status.PERMISSION_DENIED,
      details: 'the client certificate does not chain to the roots pinned for this peering',
    });

    const unknown = rawStream(h.port);
    unknown.open(streamSecret, 'no-such-peer');
    expect((await unknown.status).code).toBe(grpc.status.NOT_FOUND);

    for (const s of [wrong, stranger, unknown]) expect(s.received).toEqual([]);
    expect(h.bound).toEqual([]);
    expect(a.source.subscriptions).toEqual([]);
    expect(h.acceptor.activePeerings()).toEqual([]);

    // Nothing changed: the right dialer still gets in.
    const d = side();
    const dialer = dial(h.port, d);
    await waitFor(() => d.sink.has(ResourceUrl.trustBundle, 'acceptor.consul'), {
      ...soon,
      what: 'the real dialer',
    });
    expect(dialer.isActive).toBe(true);
  });

  it('refuses a second stream for a peering with ALREADY_EXISTS and leaves the first alone', async () => {
    const a = side();
    const d = side();
    const h = await startAcceptor({ authority: newAuthority(), local: a });
    const dialer = dial(h.port, d);
    await waitFor(() => dialer.isActive, { ...soon, what: 'the first stream' });

    const second = rawStream(h.port);
    second.open();
    const status = await second.status;
    expect(status.code).toBe(grpc.status.ALREADY_EXISTS);
    expect(status.details).toBe('peering "dialer-peer" already has an active stream');
    expect(second.received).toEqual([]);

    a.source.set(ResourceUrl.exportedService, 'after', service('after', 1));
    await waitFor(() => d.sink.has(ResourceUrl.exportedService, 'after'), {
      ...soon,
      what: 'the first stream to keep replicating',
    });
    expect(h.bound).toEqual(['dialer-peer']);
    expect(a.observer.count('failing') + d.observer.count('failing')).toBe(0);
    expect(a.observer.count('active')).toBe(1);
  });

  it('keeps a stream with heartbeats alive, and tears down one whose peer went silent on an open connection', async () => {
    const a = side();
    const timings = { heartbeatIntervalMs: 50, heartbeatTimeoutMs: 300 };
    const h = await startAcceptor({ authority: newAuthority(), local: a, timings });

    // A peer that sends Open and then nothing, keeping its TCP connection.
    const silent = rawStream(h.port);
    const opened = Date.now();
    silent.open();
    await waitFor(() => a.observer.last('failing'), {
      timeoutMs: 2_000,
      what: 'the acceptor to give up on the silent peer',
    });
    expect(Date.now() - opened).toBeLessThan(1_500);
    expect(a.observer.last('failing')?.error).toBe('no heartbeat for 300 ms');
    expect(await silent.status).toMatchObject({
      code: grpc.status.UNAVAILABLE,
      details: 'no heartbeat for 300 ms',
    });
    expect(silent.received.filter((m) => m.payload?.$case === 'heartbeat').length).toBeGreaterThan(
      1,
    );
    expect(h.acceptor.isActive('dialer-peer')).toBe(false);

    // A real dialer with the same settings outlives many timeouts: the slot was freed and
    // heartbeats flow.
    const d = side();
    const dialer = dial(h.port, d, timings);
    await waitFor(
      () => d.observer.count('heartbeat') >= 25 && a.observer.count('heartbeat') >= 25,
      { ...soon, what: '25 heartbeats each way' },
    );
    expect(dialer.isActive && h.acceptor.isActive('dialer-peer')).toBe(true);
    expect(d.observer.count('failing')).toBe(0);
    expect(a.observer.count('failing')).toBe(1);
  });

  it('delivers Terminated both ways; a terminated dialer does not reconnect', async () => {
    const a = side();
    const authority = newAuthority();
    const h = await startAcceptor({ authority, local: a });

    // The dialer deletes the peering.
    const d1 = side();
    const dialer1 = dial(h.port, d1);
    await waitFor(() => h.acceptor.isActive('dialer-peer'), { ...soon, what: 'the first stream' });
    await dialer1.stop({ terminate: true });
    await waitFor(() => a.observer.count('terminated') === 1, {
      ...soon,
      what: 'onTerminated at the acceptor',
    });
    expect(a.observer.count('failing')).toBe(0);
    await waitFor(() => !h.acceptor.isActive('dialer-peer'), {
      ...soon,
      what: 'the slot to be freed',
    });

    // The acceptor deletes the peering.
    const d2 = side();
    const dialer2 = dial(h.port, d2);
    await waitFor(() => h.acceptor.isActive('dialer-peer') && dialer2.isActive, {
      ...soon,
      what: 'the second stream',
    });
    expect(await h.acceptor.terminate('dialer-peer')).toBe(true);
    await waitFor(() => d2.observer.count('terminated') === 1, {
      ...soon,
      what: 'onTerminated at the dialer',
    });
    expect(d2.observer.count('failing')).toBe(0);
    expect(dialer2.running).toBe(false);
    expect(await h.acceptor.terminate('dialer-peer')).toBe(false);

    // The dialer deletes the peering between reconnect attempts: it still tells the acceptor.
    const d4 = side();
    const dialer4 = dial(h.port, d4, {
      open: { peerId, streamSecret: 'stale-secret', remote },
      backoff: { baseMs: 60_000 },
    });
    await waitFor(() => d4.observer.last('failing'), { ...soon, what: 'a refused Open' });
    expect(d4.observer.last('failing')?.error).toBe('PERMISSION_DENIED: invalid stream secret');
    dialer4.update({ open: { peerId, streamSecret, remote } });
    await dialer4.stop({ terminate: true, graceMs: 2_000 });
    await waitFor(() => a.observer.count('terminated') === 2, {
      ...soon,
      what: 'onTerminated from a dialer in backoff',
    });

    // Deleted while the dialer was away: its next Open is answered with Terminated.
    authority.peerings.get(peerId)!.deleting = true;
    const d3 = side();
    const dialer3 = dial(h.port, d3);
    await waitFor(() => d3.observer.count('terminated') === 1, {
      ...soon,
      what: 'Terminated on reconnect',
    });
    expect(d3.observer.count('active')).toBe(0);
    expect(dialer3.running).toBe(false);
    expect(h.bound).toEqual(['dialer-peer', 'dialer-peer', 'dialer-peer']);
  });

  it('reconnects by itself after the acceptor is killed and restarted on the same port', async () => {
    const a1 = side();
    a1.source.set(ResourceUrl.exportedServiceList, 'list', serviceList('before'));
    const h1 = await startAcceptor({ authority: newAuthority(), local: a1 });
    const d = side();
    const dialer = dial(h1.port, d, { backoff: { baseMs: 40, maxMs: 200 } });
    await waitFor(() => d.sink.has(ResourceUrl.exportedServiceList, 'list'), {
      ...soon,
      what: 'the first stream',
    });

    h1.server.forceShutdown();
    await waitFor(() => d.observer.last('failing'), { ...soon, what: 'the dialer to notice' });
    expect(d.observer.last('failing')?.error).toMatch(/^(UNAVAILABLE|CANCELLED|INTERNAL): /);
    await waitFor(() => d.observer.count('failing') >= 3, {
      ...soon,
      what: 'a few failed reconnects while the acceptor is down',
    });
    expect(dialer.isActive).toBe(false);

    const a2 = side();
    a2.source.set(ResourceUrl.exportedServiceList, 'list', serviceList('after'));
    const h2 = await startAcceptor({ authority: newAuthority(), local: a2, port: h1.port });
    await waitFor(() => d.observer.count('active') === 2, {
      ...soon,
      what: 'the dialer to be active again',
    });
    await waitFor(
      () =>
        (d.sink.get(ResourceUrl.exportedServiceList, 'list') as ExportedServiceList | undefined)
          ?.services[0]?.name === 'after',
      {
        ...soon,
        what: 'state from the restarted acceptor',
      },
    );
    expect(h2.acceptor.isActive('dialer-peer')).toBe(true);
    expect(a2.sink.applied.length).toBeGreaterThanOrEqual(0);
  });

  it('tries each address in turn', async () => {
    const a = side();
    const h = await startAcceptor({ authority: newAuthority(), local: a });
    const d = side();
    // Port 1 on loopback refuses connections.
    const dialer = dial(0, d, { addresses: ['127.0.0.1:1', `127.0.0.1:${h.port}`] });
    await waitFor(() => dialer.isActive, { ...soon, what: 'the second address' });
    expect(d.observer.count('failing')).toBe(1);
  });

  it('the dialer refuses an acceptor without the pinned CA or without the server name as a DNS SAN', async () => {
    const a = side();
    const authority = newAuthority();
    const h = await startAcceptor({ authority, local: a });

    const wrongName = side();
    dial(h.port, wrongName, { serverName: 'server.dc9.peering.elsewhere.consul' });
    const wrongCa = side();
    dial(h.port, wrongCa, { caPems: [(await strangerLeaf()).rootPem] });
    await waitFor(
      () => wrongName.observer.count('failing') >= 2 && wrongCa.observer.count('failing') >= 2,
      { ...soon, what: 'both dialers to fail' },
    );
    expect(wrongName.observer.last('failing')?.error).toContain(
      'server.dc9.peering.elsewhere.consul',
    );
    expect(wrongCa.observer.last('failing')?.error).toMatch(/UNAVAILABLE/);
    expect(wrongName.observer.count('active') + wrongCa.observer.count('active')).toBe(0);
    expect(authority.verified).toBe(0);
    expect(h.bound).toEqual([]);
  });
});
