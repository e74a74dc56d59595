import type { CertificateAuthority, Leaf } from '../ca/index.js';
import { withLocalGatewaysFirst } from './through-gateways.js';
import type { CatalogReader } from '../catalog/types.js';
import { IsthmusError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Leadership } from '../store/store.js';
import type { ImportedServices } from './imported.js';
import type { Peerings } from './peerings.js';
import { ExportSource, ImportSink } from './replication.js';
import { type PeeringServer, peeringIdentity } from './server.js';
import { statusObserver } from './status.js';
import { StreamAcceptor, type AcceptedPeer, type PeerBinding } from './stream/acceptor.js';
import type { BackoffOptions } from './stream/backoff.js';
import { StreamDialer, type DialOptions } from './stream/dialer.js';
import { certificateChainsTo } from './stream/tls.js';
import {
  type OpenVerdict,
  type SentDetail,
  type StreamOpen,
  type StreamTimings,
  timingsOf,
} from './stream/types.js';
import { type Peering, type PeeringEvent, establishedStates, isDialer } from './types.js';
import type { X509Certificate } from 'node:crypto';

export interface PeeringManagerOptions extends StreamTimings {
  readonly peerings: Peerings;
  readonly peeringServer: PeeringServer;
  readonly catalog: CatalogReader;
  readonly ca: CertificateAuthority;
  readonly imported: ImportedServices;
  readonly datacenter: string;
  readonly logger: Logger;
  /** Acceptor: the addresses replicated to dialers (`--advertise-addr` or the bound address). */
  serverAddresses(): readonly string[];
  /**
   * Dialer: our mesh gateways' LAN addresses when peering through them, dialed before the peer's.
   */
  localGatewayAddresses?(): readonly string[];
  readonly backoff?: BackoffOptions;
  /** Every change written to a peer, as its messages' sizes (for the replication metrics). */
  onResponseSent?(peeringName: string, sent: SentDetail): void;
  /**
   * Several servers per cluster: only the leader dials and accepts replication streams; the
   * others redirect dialers to it. Absent: this server is the only one.
   */
  readonly leadership?: Leadership;
}

/**
 * Reconnect delays: a short base, growing by 1.4 up to a 2.5 s cap, so an acceptor that returns
 * after any outage is dialed again within 2.5 s and the peering is ACTIVE within 5 s of its
 * return even on a loaded machine. A 64 s cap let the delay grow past 5 s after about 12 s down.
 * One TLS connection attempt every 1.25–2.5 s to a peer that is away costs next to nothing.
 */
export const peeringBackoff: BackoffOptions = {
  baseMs: 250,
  factor: 1.4,
  maxMs: 2_500,
  jitter: 0.5,
};

/** States in which a dialer keeps its stream open. */

interface DialerEntry {
  /** The peering record the dialer was started for (its ID and stream secret). */
  readonly id: string;
  dialer?: StreamDialer;
}

/**
 * Joins the peering records to the stream engine: serves the acceptor end on the peering port,
 * runs one dialer per peering this cluster established, binds each stream to its exporter,
 * importer and status observer, and tells the peer when a peering is deleted here.
 */
export class PeeringManager {
  private readonly acceptor: StreamAcceptor;
  private readonly dialers = new Map<string, DialerEntry>();
  private readonly unsubscribe: (() => void)[] = [];
  /** Acceptor deletions waiting for their dialer to come back and be told (see onDeleting). */
  private readonly awaitingDialer = new Map<string, () => void>();
  private leaf: Leaf | undefined;
  private closed = false;

  constructor(private readonly opts: PeeringManagerOptions) {
    this.acceptor = new StreamAcceptor({
      ...timingsOf(this.opts),
      authority: {
        verifyOpen: (open, cert, intermediates) => this.verifyOpen(open, cert, intermediates),
      },
      bind: (peer) => this.bindAccepted(peer),
      redirect: () => (this.leads() ? undefined : (opts.leadership?.leader() ?? '')),
      logger: opts.logger.child({ role: 'acceptor' }),
    });
  }

  /**
   * Installs the stream handler and the deletion hook, and starts a dialer per established peering.
   */
  async start(): Promise<void> {
    const { peerings, peeringServer, ca } = this.opts;
    this.leaf = await ca.leaf(peeringIdentity(ca, this.opts.datacenter));
    peeringServer.setStreamHandler(this.acceptor.handler);
    peerings.setDeletionHook((p) => this.onDeleting(p));
    this.unsubscribe.push(
      peerings.subscribe((event) => this.onPeeringEvent(event)),
      ca.subscribe((event) => {
        if (event.kind !== 'leaf-renewed' || event.leaf.spiffeId !== this.leaf?.spiffeId) return;
        this.leaf = event.leaf;
        for (const entry of this.dialers.values())
          entry.dialer?.update({ certPem: event.leaf.certPem, keyPem: event.leaf.keyPem });
      }),
    );
    if (this.opts.leadership)
      this.unsubscribe.push(this.opts.leadership.subscribe(() => this.onLeadershipChange()));
    // A stream does not survive a restart: a stored ACTIVE is stale until the stream is back.
    if (this.leads()) await this.markStreamsStale();
    for (const p of peerings.list()) this.reconcile(p);
  }

  private leads(): boolean {
    return this.opts.leadership?.isLeader() ?? true;
  }

  private async markStreamsStale(): Promise<void> {
    const { peerings } = this.opts;
    for (const p of peerings.list()) {
      if (p.state === 'ACTIVE')
        await peerings
          .setState(p.name, 'FAILING', 'no replication stream since this server restarted')
          .catch(() => undefined);
    }
  }

  /**
   * Won: dial every established peering. Lost: drop every stream, so dialers (ours through the
   * new leader, the peers' by redirect) reconnect to the server that now leads.
   */
  private onLeadershipChange(): void {
    if (this.closed) return;
    if (this.leads()) {
      this.opts.logger.info('peering leader: taking over the replication streams');
      for (const p of this.opts.peerings.list()) this.reconcile(p);
      return;
    }
    for (const name of [...this.dialers.keys()]) void this.stopDialer(name);
    for (const name of this.acceptor.activePeerings())
      this.acceptor.disconnect(name, 'this server is no longer the peering leader');
  }

  /** Ends every stream without Terminated (the peers reconnect once this server is back). */
  async close(): Promise<void> {
    this.closed = true;
    for (const stop of this.unsubscribe.splice(0)) stop();
    this.opts.peeringServer.setStreamHandler(undefined);
    this.opts.peerings.setDeletionHook(undefined);
    const dialers = [...this.dialers.values()].map((e) => e.dialer);
    this.dialers.clear();
    for (const told of this.awaitingDialer.values()) told();
    await Promise.all([this.acceptor.close(), ...dialers.map((d) => d?.stop({ graceMs: 1_000 }))]);
  }

  isActive(name: string): boolean {
    return this.acceptor.isActive(name) || (this.dialers.get(name)?.dialer?.isActive ?? false);
  }

  private async verifyOpen(
    open: StreamOpen,
    cert: X509Certificate | undefined,
    intermediates: readonly X509Certificate[] = [],
  ): Promise<OpenVerdict> {
    const p = await this.opts.peerings.verifyStream(open.peerId, open.streamSecret, (p) => {
      if (!cert || !certificateChainsTo(cert, p.peerCaPems, new Date(), intermediates)) {
        throw new IsthmusError(
          'permission_denied',
          'the client certificate does not chain to the roots pinned for this peering',
        );
      }
      if (p.state === 'TERMINATED')
        throw new IsthmusError(
          'failed_precondition',
          `peering ${JSON.stringify(p.name)} was terminated: establish it again with a new token`,
        );
      if (this.acceptor.isActive(p.name))
        throw new IsthmusError(
          'already_exists',
          `peering ${JSON.stringify(p.name)} already has an active stream`,
        );
    });
    if (p.state === 'DELETING') {
      // The acceptor answers this Open with Terminated; give the write a moment before the record
      // goes.
      const told = this.awaitingDialer.get(p.name);
      if (told) setTimeout(told, 200).unref();
    }
    return { peeringName: p.name, deleting: p.state === 'DELETING' };
  }

  private bindAccepted(peer: AcceptedPeer): PeerBinding {
    return this.binding(peer.peeringName, () => this.opts.serverAddresses());
  }

  private binding(name: string, serverAddresses: () => readonly string[]): PeerBinding {
    const { peerings, imported, catalog, ca, datacenter, logger } = this.opts;
    const onExported = (names: readonly string[]) => {
      const current = peerings.read(name)?.streamStatus.exportedServices ?? [];
      if (current.join('\n') === names.join('\n')) return;
      peerings.setStreamStatus(name, { exportedServices: [...names] }).catch(() => undefined);
    };
    return {
      source: new ExportSource({
        catalog,
        ca,
        datacenter,
        peeringName: name,
        serverAddresses,
        onExported,
      }),
      sink: new ImportSink({
        peerings,
        imported,
        peeringName: name,
        ownTrustDomain: ca.trustDomain,
      }),
      observer: {
        ...statusObserver({
          peerings,
          peeringName: name,
          logger,
          onTerminated: () => imported.dropPeer(name),
        }),
        onResponseSent: (sent) => this.opts.onResponseSent?.(name, sent),
      },
    };
  }

  private onPeeringEvent(event: PeeringEvent): void {
    if (this.closed) return;
    if (event.kind === 'peering-removed') return void this.stopDialer(event.peering.name);
    this.reconcile(event.peering, event.previous);
  }

  /** Starts, updates or stops the dialer of one peering to match its record. */
  private reconcile(p: Peering, previous?: Peering): void {
    if (!isDialer(p) || p.state === 'DELETING') return; // the deletion hook owns a DELETING dialer
    if (!this.leads()) return void this.stopDialer(p.name);
    const entry = this.dialers.get(p.name);
    if (!establishedStates.has(p.state)) return void this.stopDialer(p.name);
    const reEstablished =
      previous !== undefined && p.state === 'ESTABLISHING' && previous.state !== 'ESTABLISHING';
    if (!entry || entry.id !== p.id || reEstablished) {
      void this.stopDialer(p.name).then(() => this.startDialer(p));
      return;
    }
    if (
      previous &&
      (previous.peerCaPems !== p.peerCaPems ||
        previous.peerServerAddresses !== p.peerServerAddresses)
    ) {
      entry.dialer?.update({
        caPems: p.peerCaPems,
        addresses: this.dialAddresses(p.peerServerAddresses),
      });
    }
  }

  private async startDialer(p: Peering): Promise<void> {
    if (this.closed || this.dialers.has(p.name)) return;
    const entry: DialerEntry = { id: p.id };
    this.dialers.set(p.name, entry);
    try {
      const options = await this.dialOptions(p);
      if (this.dialers.get(p.name) !== entry || this.closed) return;
      entry.dialer = new StreamDialer(options);
      entry.dialer.start();
      this.opts.logger.info(
        { peering: p.name, peerServerName: p.peerServerName },
        'peering stream dialer started',
      );
    } catch (err) {
      if (this.dialers.get(p.name) === entry) this.dialers.delete(p.name);
      this.opts.logger.error(
        { peering: p.name, error: (err as Error).message },
        'peering stream dialer could not start',
      );
    }
  }

  private dialAddresses(peer: readonly string[]): string[] {
    return withLocalGatewaysFirst(this.opts.localGatewayAddresses?.() ?? [], peer);
  }

  private async dialOptions(p: Peering): Promise<DialOptions> {
    const { peerings, logger, datacenter } = this.opts;
    const current = peerings.read(p.name) ?? p;
    const streamSecret = await peerings.streamSecretOf(p.name);
    const leaf = this.leaf ?? (await this.opts.ca.leaf(peeringIdentity(this.opts.ca, datacenter)));
    const binding = this.binding(p.name, () => []);
    return {
      ...timingsOf(this.opts),
      ...binding,
      peeringName: p.name,
      addresses: this.dialAddresses(current.peerServerAddresses),
      serverName: current.peerServerName,
      caPems: current.peerCaPems,
      certPem: leaf.certPem,
      keyPem: leaf.keyPem,
      open: { peerId: current.peerId, streamSecret, remote: { partition: 'default', datacenter } },
      backoff: this.opts.backoff ?? peeringBackoff,
      logger: logger.child({ role: 'dialer' }),
    };
  }

  private async stopDialer(name: string, terminate = false): Promise<void> {
    const entry = this.dialers.get(name);
    if (!entry) return;
    this.dialers.delete(name);
    await entry.dialer?.stop({ terminate, graceMs: 2_000 });
  }

  private dialerTold(name: string): Promise<void> {
    return new Promise<void>((resolve) => {
      this.awaitingDialer.set(name, () => {
        this.awaitingDialer.delete(name);
        resolve();
      });
    });
  }

  /**
   * The deletion hook: tell the peer (Terminated on the acceptor's stream, or from the dialer,
   * opening a stream just for it when none is up), then drop what was imported from it.
   */
  private async onDeleting(p: Peering): Promise<void> {
    try {
      if (!isDialer(p)) {
        // No stream up: keep the peering DELETING until the dialer reconnects and is told, within
        // the deletion hook's bound (Peerings removes the record anyway after it).
        const established = p.peerCaPems.length > 0; // a PENDING peering has no dialer to tell
        if (!(await this.acceptor.terminate(p.name)) && established) await this.dialerTold(p.name);
      } else if (this.dialers.has(p.name)) await this.stopDialer(p.name, true);
      else
        await new StreamDialer(await this.dialOptions(p)).stop({ terminate: true, graceMs: 2_000 });
    } finally {
      await this.opts.imported.dropPeer(p.name);
    }
  }
}
