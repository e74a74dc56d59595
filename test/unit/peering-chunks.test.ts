/**
 * Peering at scale (issue 14, docs/architecture.md §6 "Message size"): the real exporter and
 * importer joined by two stream sessions over an in-memory wire that encodes every message and
 * records its size. A service too big for one message arrives in chunks and is applied whole; a
 * change to one instance is one small patch.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type ExportedService,
  ReplicationMessage,
  ReplicationMessage_Operation as Operation,
  type ReplicationMessage_Response,
} from '../../src/gen/isthmus/peering/v1/peering.js';
import { silentLogger } from '../../src/log.js';
import { ImportedServices } from '../../src/peering/imported.js';
import { ExportSource, ImportSink } from '../../src/peering/replication.js';
import { ChunkAssembler } from '../../src/peering/stream/chunks.js';
import {
  PeerStreamSession,
  ResourceUrl,
  type ResourceChange,
  type StreamTransport,
} from '../../src/peering/stream/index.js';
import { buildResponses, maxMessageBytes } from '../../src/peering/stream/messages.js';
import { openLmdbStore, type Store } from '../../src/store/index.js';
import { FakeCatalog } from '../helpers/fake-catalog.js';
import {
  MemorySource,
  RecordPeerings,
  RecordingObserver,
  RecordingSink,
} from '../helpers/peering-stream.js';
import { waitFor } from '../helpers/wait.js';

const exportAll = {
  kind: 'exported-services' as const,
  name: 'default',
  services: [{ name: '*', namespace: 'default', consumers: [{ peer: 'east' }] }],
};

const ca = {
  trustDomain: 'a.consul',
  roots: () => ({ trustDomain: 'a.consul', activeRootId: 'r', roots: [] }) as never,
  subscribe: () => () => undefined,
};

/** Every Response the exporter wrote, with its encoded size. */
interface Sent {
  readonly response: ReplicationMessage_Response;
  readonly bytes: number;
}

/** Encodes each message, records the exporter's responses, delivers on a later turn in order. */
function wire(to: () => PeerStreamSession, sent?: Sent[]): StreamTransport {
  return {
    write: (msg) => {
      const bytes = ReplicationMessage.encode(msg).finish();
      if (sent && msg.payload?.$case === 'response')
        sent.push({ response: msg.payload.value, bytes: bytes.length });
      setImmediate(() => to().receive(ReplicationMessage.decode(bytes)));
    },
    end: () => undefined,
  };
}

let store: Store | undefined;
let dir: string | undefined;
const sessions: PeerStreamSession[] = [];
afterEach(async () => {
  for (const s of sessions.splice(0)) s.stop();
  await store?.close();
  store = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The acceptor exports `catalog` to the dialer, which imports it into ImportedServices. */
async function replicate(catalog: FakeCatalog) {
  dir = mkdtempSync(join(tmpdir(), 'isthmus-chunks-'));
  store = await openLmdbStore(dir);
  const imported = await ImportedServices.open(store);
  const peerings = new RecordPeerings('east', 'dc-a');
  const sink = new ImportSink({
    peerings,
    imported,
    peeringName: 'east',
    ownTrustDomain: 'b.consul',
  });
  const source = new ExportSource({
    catalog,
    ca,
    datacenter: 'dc-a',
    peeringName: 'east',
    serverAddresses: () => [],
  });
  const sent: Sent[] = [];
  const observer = new RecordingObserver();
  const common = { peeringName: 'east', logger: silentLogger(), heartbeatIntervalMs: 60_000 };
  let dialer: PeerStreamSession | undefined;
  const acceptor = new PeerStreamSession(
    { ...common, role: 'acceptor', source, sink: new RecordingSink(), observer },
    wire(() => dialer!, sent),
  );
  dialer = new PeerStreamSession(
    {
      ...common,
      role: 'dialer',
      source: new MemorySource(),
      sink,
      observer: new RecordingObserver(),
      imports: [ResourceUrl.exportedServiceList, ResourceUrl.exportedService],
    },
    wire(() => acceptor),
  );
  sessions.push(acceptor, dialer);
  acceptor.start();
  dialer.start();
  /** Resolves once both subscriptions are answered and every response written so far is ACKed. */
  const settled = () =>
    waitFor(
      () => {
        const stats = acceptor.stats();
        return stats.peerSubscriptions.length === 2 && stats.outstanding === 0;
      },
      { timeoutMs: 60_000, what: 'every response ACKed' },
    );
  return { imported, sent, acceptor, observer, settled };
}

const serviceResponses = (sent: readonly Sent[]) =>
  sent.filter((s) => s.response.resourceUrl === ResourceUrl.exportedService);

describe('peering replication at scale', () => {
  it('a 20,000-instance service arrives in chunks of at most 1 MiB and is applied whole, once', async () => {
    const catalog = new FakeCatalog('dc-a');
    for (let i = 0; i < 20_000; i++)
      catalog.upsert({
        id: `big-${i}`,
        name: 'big',
        address: `10.${i >> 8}.${i & 255}.1`,
        port: 8080,
        meta: { version: 'v1', zone: `zone-${i % 3}`, build: 'abcdef0123456789' },
      });
    catalog.upsert({ id: 'small-1', name: 'small' });
    catalog.putEntry(exportAll);
    const { imported, sent, observer, settled } = await replicateWatched(catalog);
    await settled();

    const big = serviceResponses(sent).filter((s) => s.response.resourceId === 'big');
    expect(big.length, 'the service needs several messages').toBeGreaterThanOrEqual(2);
    expect(big.map((s) => s.response.chunk?.index)).toEqual(big.map((_, i) => i));
    expect(new Set(big.map((s) => s.response.nonce)).size, 'one nonce for all chunks').toBe(1);
    for (const s of sent) expect(s.bytes).toBeLessThanOrEqual(maxMessageBytes);
    expect(imported.heldOf('east', 'big')).toHaveLength(20_000);
    expect(imported.heldOf('east', 'small')).toHaveLength(1);
    expect(observer.events.filter((e) => e.kind === 'nack')).toEqual([]);
  });

  it('a change to one instance of a big service is one small patch; the importer holds the rest', async () => {
    const catalog = new FakeCatalog('dc-a');
    for (let i = 0; i < 20_000; i++)
      catalog.upsert({ id: `big-${i}`, name: 'big', address: '10.0.0.1', port: 8000 + (i % 1000) });
    catalog.putEntry(exportAll);
    const { imported, sent, settled } = await replicate(catalog);
    await settled();
    const before = sent.length;

    catalog.upsert({ id: 'big-7', name: 'big', address: '10.9.9.9', port: 9000 });
    await settled();
    const moved = sent.slice(before);
    expect(moved).toHaveLength(1);
    expect(moved[0]!.response.operation).toBe(Operation.OPERATION_PATCH);
    expect(moved[0]!.bytes, 'bytes on the wire for one moved instance').toBeLessThan(512);
    const held = imported.heldOf('east', 'big');
    expect(held).toHaveLength(20_000);
    expect(held.find((i) => i.id === 'big-7')).toMatchObject({ address: '10.9.9.9', port: 9000 });

    const next = sent.length;
    catalog.remove('big-8');
    await settled();
    expect(sent.slice(next).map((s) => [s.response.operation, s.response.chunk])).toEqual([
      [Operation.OPERATION_PATCH, undefined],
    ]);
    expect(imported.heldOf('east', 'big')).toHaveLength(19_999);
    expect(imported.heldOf('east', 'big').some((i) => i.id === 'big-8')).toBe(false);
  });

  it('a patch the importer cannot apply is refused, and the exporter sends the full state at once', async () => {
    const catalog = new FakeCatalog('dc-a');
    for (let i = 0; i < 10; i++) catalog.upsert({ id: `api-${i}`, name: 'api', port: 80 });
    catalog.putEntry(exportAll);
    const source = new ExportSource({
      catalog,
      ca,
      datacenter: 'dc-a',
      peeringName: 'east',
      serverAddresses: () => [],
    });
    const changes: ResourceChange[] = [];
    source.subscribe(ResourceUrl.exportedService, (c) => changes.push(c));
    catalog.upsert({ id: 'api-3', name: 'api', port: 81 });
    expect(changes.map((c) => c.operation)).toEqual(['upsert', 'patch']);
    const patch = changes[1]!.resource as ExportedService;
    expect(patch.instances.map((i) => i.id)).toEqual(['api-3']);
    expect(patch.patch?.baseVersion).toBe((changes[0]!.resource as ExportedService).version);

    source.rejected(ResourceUrl.exportedService, 'api');
    expect(changes.map((c) => c.operation)).toEqual(['upsert', 'patch', 'upsert']);
    expect((changes[2]!.resource as ExportedService).instances).toHaveLength(10);

    // The importer side: a patch against a version it does not hold changes nothing.
    dir = mkdtempSync(join(tmpdir(), 'isthmus-chunks-'));
    store = await openLmdbStore(dir);
    const imported = await ImportedServices.open(store);
    const sink = new ImportSink({
      peerings: new RecordPeerings('east', 'dc-a'),
      imported,
      peeringName: 'east',
      ownTrustDomain: 'b.consul',
    });
    await expect(sink.apply(ResourceUrl.exportedService, changes[1]!)).rejects.toMatchObject({
      code: 'failed_precondition',
    });
    expect(imported.heldOf('east', 'api')).toEqual([]);
    await sink.apply(ResourceUrl.exportedService, changes[0]!);
    await sink.apply(ResourceUrl.exportedService, changes[1]!);
    expect(imported.heldOf('east', 'api').find((i) => i.id === 'api-3')?.port).toBe(81);
  });

  it('chunks out of order, or another response in the middle, are refused and nothing is applied', () => {
    const big: ExportedService = {
      service: { name: 'big', namespace: 'default', partition: 'default' },
      instances: Array.from({ length: 12_000 }, (_, i) => ({
        id: `big-${i}`,
        name: 'big',
        kind: 'typical',
        address: '10.0.0.1',
        port: 80,
        meta: { padding: 'x'.repeat(100) },
        health: 'passing',
        destinationServiceName: '',
      })),
    };
    const chunks = buildResponses('7', ResourceUrl.exportedService, {
      resourceId: 'big',
      operation: 'upsert',
      resource: big,
    }).map((m) => (m.message.payload as { value: ReplicationMessage_Response }).value);
    expect(chunks.length).toBeGreaterThanOrEqual(2);

    const inOrder = new ChunkAssembler();
    const results = chunks.map((c) => inOrder.add(c));
    expect(results.slice(0, -1).every((r) => r.ok && r.value === undefined)).toBe(true);
    const whole = results.at(-1)!;
    expect(whole.ok && whole.value?.resource?.value.length).toBeGreaterThan(maxMessageBytes);

    const skipping = new ChunkAssembler();
    expect(skipping.add(chunks[0]!).ok).toBe(true);
    const skipped = skipping.add(chunks[2] ?? { ...chunks[1]!, chunk: { index: 5, count: 9 } });
    expect(skipped.ok).toBe(false);
    if (!skipped.ok) expect(skipped.error).toMatchObject({ code: 'invalid_argument' });

    const interrupted = new ChunkAssembler();
    interrupted.add(chunks[0]!);
    const other = { ...chunks[0]!, chunk: undefined, nonce: '8', resourceId: 'small' };
    expect(interrupted.add(other).ok).toBe(false);
    // The interrupted resource is gone: its remaining chunks do not complete anything.
    expect(chunks.slice(1).some((c) => interrupted.add(c).ok)).toBe(false);
  });
});

/**
 * `replicate`, also checking on every change the importer publishes that it holds either none
 * or all of each service's instances (it never serves half a service).
 */
async function replicateWatched(catalog: FakeCatalog) {
  const expected = new Map<string, number>();
  for (const i of catalog.allInstances()) expected.set(i.name, (expected.get(i.name) ?? 0) + 1);
  const r = await replicate(catalog);
  const partial: string[] = [];
  r.imported.subscribe((event) => {
    if (!event.service) return;
    const held = r.imported.heldOf('east', event.service).length;
    if (held !== 0 && held !== expected.get(event.service))
      partial.push(`${event.service}:${held}`);
  });
  const settled = async () => {
    await r.settled();
    expect(partial, 'services seen half applied').toEqual([]);
  };
  return { ...r, settled };
}
