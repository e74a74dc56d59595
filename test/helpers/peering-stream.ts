/**
 * Test doubles for the peering stream engine: an in-memory ResourceSource, a recording ResourceSink
 * and StreamObserver, a StreamAuthority over fixed peerings, and a small PKI (two clusters' CAs,
 * the acceptor's server certificate, the dialer's client certificate).
 */
import type { X509Certificate } from 'node:crypto';
import { hashSecret, secretMatches } from '../../src/acl/token-secret.js';
import { createRoot, issueLeaf, loadSigner, type RootMaterial } from '../../src/ca/x509.js';
import { IsthmusError } from '../../src/errors.js';
import type { Peering } from '../../src/peering/types.js';
import {
  certificateChainsTo,
  type NackDetail,
  type OpenVerdict,
  type ReplicatedResource,
  type ResourceChange,
  type ResourceSink,
  type ResourceSource,
  type ResourceUrl,
  type StreamAuthority,
  type StreamObserver,
  type StreamOpen,
} from '../../src/peering/stream/index.js';

export class MemorySource implements ResourceSource {
  private readonly data = new Map<ResourceUrl, Map<string, ReplicatedResource>>();
  private readonly watchers = new Map<ResourceUrl, Set<(change: ResourceChange) => void>>();
  /** Every subscribe call, in order. */
  readonly subscriptions: ResourceUrl[] = [];

  set(url: ResourceUrl, resourceId: string, resource: ReplicatedResource): void {
    this.entries(url).set(resourceId, resource);
    this.notify(url, { resourceId, operation: 'upsert', resource });
  }

  delete(url: ResourceUrl, resourceId: string): void {
    this.entries(url).delete(resourceId);
    this.notify(url, { resourceId, operation: 'delete' });
  }

  subscribe(url: ResourceUrl, emit: (change: ResourceChange) => void): () => void {
    this.subscriptions.push(url);
    for (const [resourceId, resource] of this.entries(url))
      emit({ resourceId, operation: 'upsert', resource });
    const set = this.watchers.get(url) ?? new Set();
    this.watchers.set(url, set);
    set.add(emit);
    return () => set.delete(emit);
  }

  watcherCount(): number {
    return [...this.watchers.values()].reduce((n, s) => n + s.size, 0);
  }

  private entries(url: ResourceUrl): Map<string, ReplicatedResource> {
    let m = this.data.get(url);
    if (!m) this.data.set(url, (m = new Map()));
    return m;
  }

  private notify(url: ResourceUrl, change: ResourceChange): void {
    for (const emit of this.watchers.get(url) ?? []) emit(change);
  }
}

export class RecordingSink implements ResourceSink {
  readonly applied: { url: ResourceUrl; change: ResourceChange }[] = [];
  private readonly state = new Map<string, ReplicatedResource>();
  /** Returns an error message to reject a change with. */
  reject: ((url: ResourceUrl, change: ResourceChange) => string | undefined) | undefined;
  /** Awaited before a change is recorded (to hold an apply in flight). */
  gate: Promise<void> | undefined;

  async apply(url: ResourceUrl, change: ResourceChange): Promise<void> {
    const refusal = this.reject?.(url, change);
    if (refusal) throw new Error(refusal);
    if (this.gate) await this.gate;
    this.applied.push({ url, change });
    if (change.operation === 'upsert')
      this.state.set(`${url} ${change.resourceId}`, change.resource!);
    else this.state.delete(`${url} ${change.resourceId}`);
  }

  get(url: ResourceUrl, resourceId: string): ReplicatedResource | undefined {
    return this.state.get(`${url} ${resourceId}`);
  }

  has(url: ResourceUrl, resourceId: string): boolean {
    return this.state.has(`${url} ${resourceId}`);
  }
}

export type ObservedEvent =
  | { kind: 'active' }
  | { kind: 'failing'; error: string }
  | { kind: 'nack'; message: string; code: number }
  | { kind: 'terminated' }
  | { kind: 'heartbeat' };

export class RecordingObserver implements StreamObserver {
  readonly events: ObservedEvent[] = [];
  received = 0;
  sent = 0;

  onActive(): void {
    this.events.push({ kind: 'active' });
  }
  onFailing(error: string): void {
    this.events.push({ kind: 'failing', error });
  }
  onNack(message: string, detail: NackDetail): void {
    this.events.push({ kind: 'nack', message, code: detail.code });
  }
  onTerminated(): void {
    this.events.push({ kind: 'terminated' });
  }
  onHeartbeat(): void {
    this.events.push({ kind: 'heartbeat' });
  }
  onReceive(): void {
    this.received++;
  }
  onSend(): void {
    this.sent++;
  }

  count(kind: ObservedEvent['kind']): number {
    return this.events.filter((e) => e.kind === kind).length;
  }

  last<K extends ObservedEvent['kind']>(kind: K): Extract<ObservedEvent, { kind: K }> | undefined {
    return this.events
      .filter((e): e is Extract<ObservedEvent, { kind: K }> => e.kind === kind)
      .pop();
  }
}

export interface FakePeering {
  readonly name: string;
  readonly secret: string;
  /** The dialer roots pinned at ExchangeSecret. */
  readonly rootPems: readonly string[];
  deleting?: boolean;
}

/** The authority the lead builds over peering records: stream secret + pinned dialer roots. */
export class FakeAuthority implements StreamAuthority {
  readonly peerings = new Map<string, FakePeering>();
  verified = 0;

  async verifyOpen(open: StreamOpen, peerCert: X509Certificate | undefined): Promise<OpenVerdict> {
    const p = this.peerings.get(open.peerId);
    if (!p) throw new IsthmusError('not_found', `no peering with ID ${open.peerId}`);
    if (!secretMatches(open.streamSecret, hashSecret(p.secret)))
      throw new IsthmusError('permission_denied', 'invalid stream secret');
    if (!peerCert || !certificateChainsTo(peerCert, p.rootPems)) {
      throw new IsthmusError(
        'permission_denied',
        'the client certificate does not chain to the roots pinned for this peering',
      );
    }
    this.verified++;
    return { peeringName: p.name, deleting: p.deleting };
  }
}

export interface Pki {
  readonly acceptorRoot: RootMaterial;
  readonly dialerRoot: RootMaterial;
  readonly serverName: string;
  /** The acceptor's peering server certificate (DNS SAN = serverName). */
  readonly server: { certPem: string; keyPem: string };
  /** The dialer's client certificate, from the dialer's CA. */
  readonly client: { certPem: string; keyPem: string };
}

const hour = 3_600_000;

export async function makePki(serverName = 'server.dc1.peering.acceptor.consul'): Promise<Pki> {
  const now = Date.now();
  const acceptorRoot = await createRoot({
    rootUri: 'spiffe://acceptor.consul',
    name: 'Acceptor CA',
    now,
    validityMs: 24 * hour,
  });
  const dialerRoot = await createRoot({
    rootUri: 'spiffe://dialer.consul',
    name: 'Dialer CA',
    now,
    validityMs: 24 * hour,
  });
  const server = await issueLeaf(await loadSigner('a', acceptorRoot.certPem, acceptorRoot.keyPem), {
    spiffeId: 'spiffe://acceptor.consul/gateway/mesh/dc/dc1',
    dnsSans: [serverName],
    now,
    ttlMs: hour,
  });
  const client = await issueLeaf(await loadSigner('d', dialerRoot.certPem, dialerRoot.keyPem), {
    spiffeId: 'spiffe://dialer.consul/gateway/mesh/dc/dc2',
    dnsSans: ['server.dc2.peering.dialer.consul'],
    now,
    ttlMs: hour,
  });
  return { acceptorRoot, dialerRoot, serverName, server, client };
}

/** A certificate pair from a CA nobody pinned. */
export async function strangerLeaf(
  dnsSans: string[] = [],
): Promise<{ certPem: string; keyPem: string; rootPem: string }> {
  const now = Date.now();
  const root = await createRoot({
    rootUri: 'spiffe://stranger.consul',
    name: 'Stranger CA',
    now,
    validityMs: 24 * hour,
  });
  const leaf = await issueLeaf(await loadSigner('s', root.certPem, root.keyPem), {
    spiffeId: 'spiffe://stranger.consul/svc/x',
    dnsSans,
    now,
    ttlMs: hour,
  });
  return { certPem: leaf.certPem, keyPem: leaf.keyPem, rootPem: root.certPem };
}

/**
 * The peerings an ImportSink writes to, over one in-memory peering record: stream-status writes
 * replace `record`, and every `updatePeer` patch is kept in `updates` (the record stays as it is).
 */
export class RecordPeerings {
  record: Peering;
  readonly updates: object[] = [];

  constructor(name: string, datacenter: string) {
    this.record = {
      name,
      remote: { datacenter, partition: 'default' },
      streamStatus: { importedServices: [] as string[], exportedServices: [] },
    } as unknown as Peering;
  }

  read = () => this.record;
  list = () => [this.record];
  updatePeer = async (_name: string, patch: object) => {
    this.updates.push(patch);
    return this.record;
  };
  setStreamStatus = async (_name: string, patch: object) => {
    this.record = { ...this.record, streamStatus: { ...this.record.streamStatus, ...patch } };
    return this.record;
  };
}
