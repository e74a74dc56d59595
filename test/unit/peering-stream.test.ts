/**
 * The peering stream engine without gRPC: two PeerStreamSessions joined by an in-memory transport
 * that encodes every message, plus the backoff function and the response decoder.
 */
import { describe, expect, it } from 'vitest';
import {
  ExportedService,
  ExportedServiceList,
  ReplicationMessage,
  ReplicationMessage_Operation as Operation,
  ServerAddresses,
  TrustBundle,
} from '../../src/gen/isthmus/peering/v1/peering.js';
import type { IsthmusError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import {
  backoffDelay,
  PeerStreamSession,
  ResourceUrl,
  type SessionOptions,
  type StreamTransport,
} from '../../src/peering/stream/index.js';
import { peeringBackoff } from '../../src/peering/manager.js';
import { parseResponse } from '../../src/peering/stream/messages.js';
import type { ImportedServices } from '../../src/peering/imported.js';
import { ImportSink } from '../../src/peering/replication.js';
import { MemorySource, RecordingObserver, RecordingSink } from '../helpers/peering-stream.js';
import { waitFor } from '../helpers/wait.js';

interface End {
  readonly source: MemorySource;
  readonly sink: RecordingSink;
  readonly observer: RecordingObserver;
  session: PeerStreamSession;
}

/** Every message goes through protobuf encoding and arrives on a later turn, in order. */
function wire(to: () => PeerStreamSession): StreamTransport {
  return {
    write: (msg) => {
      const bytes = ReplicationMessage.encode(msg).finish();
      setImmediate(() => to().receive(ReplicationMessage.decode(bytes)));
    },
    end: (error) =>
      setImmediate(() => to().transportClosed(error ? error.message : 'the peer ended the stream')),
  };
}

function end(): End {
  return {
    source: new MemorySource(),
    sink: new RecordingSink(),
    observer: new RecordingObserver(),
    session: undefined as unknown as PeerStreamSession,
  };
}

function connect(timings: Partial<SessionOptions> = {}): { acceptor: End; dialer: End } {
  const acceptor = end();
  const dialer = end();
  const common = {
    peeringName: 'p',
    logger: silentLogger(),
    heartbeatIntervalMs: 1_000,
    heartbeatTimeoutMs: 10_000,
    ...timings,
  };
  acceptor.session = new PeerStreamSession(
    { ...common, role: 'acceptor', ...acceptor },
    wire(() => dialer.session),
  );
  dialer.session = new PeerStreamSession(
    { ...common, role: 'dialer', ...dialer },
    wire(() => acceptor.session),
  );
  return { acceptor, dialer };
}

const bundle = (trustDomain: string) =>
  TrustBundle.fromPartial({ trustDomain, rootPems: [`${trustDomain}-root`] });
const list = (...names: string[]) =>
  ExportedServiceList.fromPartial({
    services: names.map((name) => ({ name, namespace: 'default', partition: 'default' })),
  });
const settled = (s: PeerStreamSession) => s.stats().outstanding === 0;

describe('PeerStreamSession', () => {
  it('replicates both ways, ACKs every response, and delivers later changes and deletes', async () => {
    const { acceptor, dialer } = connect();
    acceptor.source.set(ResourceUrl.trustBundle, 'acceptor.consul', bundle('acceptor.consul'));
    acceptor.source.set(
      ResourceUrl.serverAddresses,
      'addresses',
      ServerAddresses.fromPartial({ addresses: ['10.0.0.1:8503'] }),
    );
    dialer.source.set(ResourceUrl.trustBundle, 'dialer.consul', bundle('dialer.consul'));
    dialer.source.set(ResourceUrl.exportedServiceList, 'list', list('api'));
    dialer.session.start();
    acceptor.session.start();

    await waitFor(
      () =>
        dialer.sink.has(ResourceUrl.serverAddresses, 'addresses') &&
        acceptor.sink.has(ResourceUrl.exportedServiceList, 'list'),
      {
        timeoutMs: 2_000,
        what: 'both initial states',
      },
    );
    expect(dialer.sink.get(ResourceUrl.trustBundle, 'acceptor.consul')).toMatchObject({
      trustDomain: 'acceptor.consul',
      rootPems: ['acceptor.consul-root'],
    });
    expect(acceptor.sink.get(ResourceUrl.trustBundle, 'dialer.consul')).toMatchObject({
      trustDomain: 'dialer.consul',
    });
    // The dialer does not export server addresses; the acceptor never subscribes to them.
    expect(dialer.source.subscriptions).not.toContain(ResourceUrl.serverAddresses);
    expect(dialer.source.subscriptions[0]).toBe(ResourceUrl.trustBundle);

    const svc = ExportedService.fromPartial({
      service: { name: 'web' },
      instances: [{ id: 'web-1', address: '10.1.1.1', port: 8080, health: 'passing' }],
    });
    acceptor.source.set(ResourceUrl.exportedService, 'web', svc);
    await waitFor(() => dialer.sink.has(ResourceUrl.exportedService, 'web'), {
      timeoutMs: 2_000,
      what: 'the new service',
    });
    expect(dialer.sink.get(ResourceUrl.exportedService, 'web')).toMatchObject({
      instances: [{ id: 'web-1', port: 8080 }],
    });
    acceptor.source.delete(ResourceUrl.exportedService, 'web');
    await waitFor(() => !dialer.sink.has(ResourceUrl.exportedService, 'web'), {
      timeoutMs: 2_000,
      what: 'the delete',
    });
    expect(dialer.sink.applied.at(-1)).toMatchObject({
      url: ResourceUrl.exportedService,
      change: { resourceId: 'web', operation: 'delete' },
    });

    await waitFor(() => settled(acceptor.session) && settled(dialer.session), {
      timeoutMs: 2_000,
      what: 'every response settled',
    });
    expect(acceptor.session.stats()).toMatchObject({ responsesSent: 4, acked: 4, nacked: 0 });
    expect(dialer.session.stats()).toMatchObject({ responsesSent: 2, acked: 2, nacked: 0 });
    expect(acceptor.observer.count('active')).toBe(1);
    expect(dialer.observer.count('active')).toBe(1);
    acceptor.session.stop();
  });

  it('NACKs a response its sink rejects, reports it to the sender, and keeps the stream up', async () => {
    const { acceptor, dialer } = connect();
    dialer.sink.reject = (_url, change) =>
      change.resourceId === 'bad' ? 'service bad: instance port 0 is not allowed' : undefined;
    dialer.session.start();
    acceptor.session.start();
    acceptor.source.set(
      ResourceUrl.exportedService,
      'bad',
      ExportedService.fromPartial({ service: { name: 'bad' } }),
    );
    await waitFor(() => acceptor.observer.last('nack'), { timeoutMs: 2_000, what: 'the NACK' });
    expect(acceptor.observer.last('nack')?.message).toBe(
      'service bad: instance port 0 is not allowed',
    );
    expect(acceptor.session.stats()).toMatchObject({
      nacked: 1,
      outstanding: 0,
      lastNack: { message: 'service bad: instance port 0 is not allowed' },
    });
    expect(dialer.session.stats().nacksSent).toBe(1);

    acceptor.source.set(
      ResourceUrl.exportedService,
      'good',
      ExportedService.fromPartial({ service: { name: 'good' } }),
    );
    await waitFor(() => dialer.sink.has(ResourceUrl.exportedService, 'good'), {
      timeoutMs: 2_000,
      what: 'a later change',
    });
    expect(acceptor.observer.count('failing') + dialer.observer.count('failing')).toBe(0);
    acceptor.session.stop();
  });

  it('reports Terminated only after the response being applied finished, and applies nothing queued after it', async () => {
    const { acceptor, dialer } = connect();
    let release!: () => void;
    dialer.sink.gate = new Promise((resolve) => (release = resolve));
    dialer.session.start();
    acceptor.session.start();
    acceptor.source.set(
      ResourceUrl.exportedService,
      'first',
      ExportedService.fromPartial({ service: { name: 'first' } }),
    );
    acceptor.source.set(
      ResourceUrl.exportedService,
      'second',
      ExportedService.fromPartial({ service: { name: 'second' } }),
    );
    await waitFor(() => dialer.session.stats().responsesReceived === 1, {
      timeoutMs: 2_000,
      what: 'the first apply to start',
    });
    acceptor.session.terminate();
    await waitFor(() => !dialer.session.isActive, {
      timeoutMs: 2_000,
      what: 'the dialer to see Terminated',
    });
    expect(dialer.observer.count('terminated')).toBe(0);
    release();
    expect(await dialer.session.ended).toEqual({ kind: 'terminated', by: 'peer' });
    expect(dialer.observer.count('terminated')).toBe(1);
    expect(dialer.observer.count('failing')).toBe(0);
    expect(dialer.sink.applied.map((a) => a.change.resourceId)).toEqual(['first']);
    expect(await acceptor.session.ended).toEqual({ kind: 'terminated', by: 'local' });
    expect(acceptor.observer.count('terminated')).toBe(0);
    expect(acceptor.source.watcherCount()).toBe(0);
  });

  it('tears the stream down when the peer goes silent, and a dialer reports an unanswered Open as such', async () => {
    const observer = new RecordingObserver();
    const writes: ReplicationMessage[] = [];
    const ended: (IsthmusError | undefined)[] = [];
    const session = new PeerStreamSession(
      {
        role: 'dialer',
        peeringName: 'p',
        source: new MemorySource(),
        sink: new RecordingSink(),
        observer,
        logger: silentLogger(),
        open: {
          peerId: 'id',
          streamSecret: 's3cret',
          remote: { partition: 'default', datacenter: 'dc2' },
        },
        heartbeatIntervalMs: 10,
        openTimeoutMs: 60,
      },
      { write: (m) => writes.push(m), end: (e) => ended.push(e) },
    );
    session.start();
    expect(writes[0]?.payload?.$case).toBe('open');
    expect(await session.ended).toEqual({
      kind: 'failed',
      error: 'no answer to Open within 60 ms',
    });
    expect(observer.last('failing')?.error).toBe('no answer to Open within 60 ms');
    expect(ended[0]?.code).toBe('unavailable');
    expect(writes.filter((m) => m.payload?.$case === 'heartbeat').length).toBeGreaterThan(1);
    expect(observer.count('active')).toBe(0);
  });

  it("NACKs a peer's bad trust bundle as INVALID_ARGUMENT naming the field, and keeps the stream up", async () => {
    const { acceptor, dialer } = connect();
    const patches: object[] = [];
    const peerings = {
      read: () => undefined,
      updatePeer: async (_name: string, patch: object) => {
        patches.push(patch);
        return undefined as never;
      },
      setStreamStatus: async () => undefined as never,
      list: () => [],
    };
    const imported = { retain: async () => undefined } as unknown as ImportedServices;
    dialer.session = new PeerStreamSession(
      {
        role: 'dialer',
        peeringName: 'p',
        source: dialer.source,
        sink: new ImportSink({
          peerings,
          imported,
          peeringName: 'p',
          ownTrustDomain: 'dialer.consul',
        }),
        observer: dialer.observer,
        logger: silentLogger(),
      },
      {
        write: (msg) => {
          const bytes = ReplicationMessage.encode(msg).finish();
          setImmediate(() => acceptor.session.receive(ReplicationMessage.decode(bytes)));
        },
        end: () => undefined,
      },
    );
    acceptor.source.set(
      ResourceUrl.trustBundle,
      'acceptor.consul',
      TrustBundle.fromPartial({ trustDomain: 'acceptor.consul', rootPems: ['not a pem'] }),
    );
    dialer.session.start();
    acceptor.session.start();
    await waitFor(() => acceptor.observer.last('nack'), { timeoutMs: 5_000, what: 'the NACK' });
    expect(acceptor.observer.last('nack')).toEqual({
      kind: 'nack',
      message: 'root_pems[0]: not a PEM CA certificate',
      code: 3, // INVALID_ARGUMENT: the peer's input, not an internal error of ours
    });
    expect(patches).toEqual([]);
    expect(dialer.session.isActive).toBe(true);
    acceptor.session.stop();
  });

  it('NACKs responses it cannot use and ignores subscriptions to what it does not export', async () => {
    const writes: ReplicationMessage[] = [];
    const source = new MemorySource();
    const session = new PeerStreamSession(
      {
        role: 'dialer',
        peeringName: 'p',
        source,
        sink: new RecordingSink(),
        observer: new RecordingObserver(),
        logger: silentLogger(),
      },
      { write: (m) => writes.push(m), end: () => undefined },
    );
    session.start();
    const response = (resourceUrl: string, typeUrl: string, nonce: string) =>
      ReplicationMessage.fromPartial({
        payload: {
          $case: 'response',
          value: {
            nonce,
            resourceUrl,
            resourceId: 'x',
            operation: Operation.OPERATION_UPSERT,
            resource: { typeUrl, value: Buffer.from(TrustBundle.encode(bundle('t')).finish()) },
          },
        },
      });
    session.receive(response(ResourceUrl.trustBundle, ResourceUrl.exportedService, 'n1'));
    session.receive(
      response(
        'type.googleapis.com/isthmus.peering.v1.Unknown',
        'type.googleapis.com/isthmus.peering.v1.Unknown',
        'n2',
      ),
    );
    session.receive(
      ReplicationMessage.fromPartial({
        payload: { $case: 'request', value: { resourceUrl: ResourceUrl.serverAddresses } },
      }),
    );
    await waitFor(
      () =>
        writes.filter((m) => m.payload?.$case === 'request' && m.payload.value.responseNonce !== '')
          .length === 2,
      {
        timeoutMs: 2_000,
        what: 'two NACKs',
      },
    );
    const nacks = writes.flatMap((m) =>
      m.payload?.$case === 'request' && m.payload.value.responseNonce ? [m.payload.value] : [],
    );
    expect(nacks.map((n) => [n.responseNonce, n.error?.message])).toEqual([
      [
        'n1',
        `resource type ${ResourceUrl.exportedService} does not match resource_url ${ResourceUrl.trustBundle}`,
      ],
      ['n2', 'not subscribed to type.googleapis.com/isthmus.peering.v1.Unknown'],
    ]);
    expect(nacks[0]?.error?.code).toBe(3); // INVALID_ARGUMENT
    expect(source.subscriptions).toEqual([]);
    expect(session.isActive).toBe(true);
    session.stop();
  });

  it('keeps running when an observer callback throws', async () => {
    const { acceptor, dialer } = connect();
    acceptor.observer.onSend = () => {
      throw new Error('tracker broke');
    };
    dialer.session.start();
    acceptor.session.start();
    acceptor.source.set(ResourceUrl.trustBundle, 'a', bundle('a'));
    await waitFor(() => dialer.sink.has(ResourceUrl.trustBundle, 'a'), {
      timeoutMs: 2_000,
      what: 'replication despite the observer',
    });
    acceptor.session.stop();
  });
});

describe('parseResponse', () => {
  const base = { nonce: '1', resourceUrl: ResourceUrl.trustBundle, resourceId: 'td' };
  it('decodes upserts and deletes and refuses what it cannot decode', () => {
    const value = Buffer.from(TrustBundle.encode(bundle('td')).finish());
    expect(
      parseResponse({
        ...base,
        operation: Operation.OPERATION_UPSERT,
        resource: { typeUrl: ResourceUrl.trustBundle, value },
      }),
    ).toMatchObject({
      ok: true,
      value: {
        operation: 'upsert',
        resource: { $type: 'isthmus.peering.v1.TrustBundle', trustDomain: 'td' },
      },
    });
    expect(parseResponse({ ...base, operation: Operation.OPERATION_DELETE })).toEqual({
      ok: true,
      value: { resourceId: 'td', operation: 'delete' },
    });
    const refusal = (res: Parameters<typeof parseResponse>[0]) => {
      const parsed = parseResponse(res);
      return parsed.ok
        ? undefined
        : { code: parsed.error.code, field: parsed.error.field, message: parsed.error.message };
    };
    expect(refusal({ ...base, operation: Operation.OPERATION_UPSERT })).toEqual({
      code: 'invalid_argument',
      field: 'resource',
      message: 'upsert without resource',
    });
    expect(refusal({ ...base, operation: Operation.OPERATION_UNSPECIFIED })).toMatchObject({
      field: 'operation',
      message: 'unknown operation 0',
    });
    expect(
      refusal({ ...base, resourceId: '', operation: Operation.OPERATION_DELETE }),
    ).toMatchObject({ field: 'resource_id', message: expect.stringContaining('resource_id') });
    expect(
      refusal({
        ...base,
        operation: Operation.OPERATION_UPSERT,
        resource: { typeUrl: ResourceUrl.trustBundle, value: Buffer.from([0x0a, 0xff]) },
      }),
    ).toMatchObject({ field: 'resource', message: expect.stringMatching(/does not decode/) });
  });
});

describe('backoffDelay', () => {
  it('grows exponentially from the base, is capped at 64 s, and jitters within [d/2, d]', () => {
    const ceiling = (n: number) => Math.min(64_000, 1_000 * 2 ** n);
    for (let n = 0; n < 12; n++) {
      expect(backoffDelay(n, { random: () => 0 })).toBe(ceiling(n));
      expect(backoffDelay(n, { random: () => 0.999999 })).toBeGreaterThanOrEqual(ceiling(n) / 2);
    }
    expect([0, 1, 2, 3, 4, 5, 6].map((n) => backoffDelay(n, { random: () => 0 }))).toEqual([
      1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000,
    ]);
    expect(backoffDelay(1_000)).toBeLessThanOrEqual(64_000);
    expect(backoffDelay(50, { baseMs: 10, random: () => 0 })).toBe(64_000);
    const samples = new Set(Array.from({ length: 50 }, () => backoffDelay(5)));
    expect(samples.size).toBeGreaterThan(10);
    for (const d of samples) expect(d).toBeGreaterThanOrEqual(16_000);
    expect(backoffDelay(0, { baseMs: 20, maxMs: 100, factor: 3, random: () => 0 })).toBe(20);
    expect(backoffDelay(2, { baseMs: 20, maxMs: 100, factor: 3, random: () => 0 })).toBe(100);
  });

  it("a peering's dialer retries at most 2.5 s apart however long the acceptor was away", () => {
    let elapsed = 0;
    for (let n = 0; n < 200; n++) {
      const delay = backoffDelay(n, { ...peeringBackoff, random: () => 0 });
      expect(delay).toBeLessThanOrEqual(2_500);
      elapsed += delay;
    }
    expect(backoffDelay(0, { ...peeringBackoff, random: () => 0 })).toBe(250);
    expect(elapsed).toBeGreaterThan(400_000); // it does keep retrying
  });
});
