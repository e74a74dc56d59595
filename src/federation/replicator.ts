import type * as grpc from '@grpc/grpc-js';
import type { FederatedCa } from '../ca/index.js';
import type { Catalog } from '../catalog/catalog.js';
import { parseReplicatedConfigEntry } from '../catalog/records.js';
import type { ConfigEntry } from '../catalog/types.js';
import type {
  FederationServiceClient,
  FederationState,
  ReplicatedState,
} from '../gen/isthmus/federation/v1/federation.js';
import type { Logger } from '../log.js';
import { federationServerName } from '../mesh/names.js';
import { localFederationState, primaryDialAddresses } from './local-state.js';
import { federationIdentity, stateProblem, stateRecordOf } from './server.js';
import type { FederationStates, WanServerRecord } from './states.js';
import { joinPrimary } from './join.js';
import { dialFederation } from './tls.js';
import { type DatacenterLink, linkSeenFromSecondary } from './wan-members.js';

export interface ReplicatorOptions {
  readonly datacenter: string;
  readonly primary: string;
  readonly nodeName: string;
  readonly primaryGateways: readonly string[];
  readonly catalog: Catalog;
  readonly ca: FederatedCa;
  /** The federation secret: a new intermediate after a primary root rotation is a new join. */
  readonly secret: Buffer;
  readonly states: FederationStates;
  /** This datacenter's servers (reported in our federation state), and when they change. */
  readonly localServers: LocalServers;
  readonly logger: Logger;
}

export interface LocalServers {
  list(): readonly WanServerRecord[];
  subscribe(fn: () => void): () => void;
}

export interface ReplicationStatus {
  readonly connected: boolean;
  /** The gateway the stream runs through (never a server's address). */
  readonly via: string | undefined;
  readonly lastError: string | undefined;
  /** Index of the last replicated state applied (0: none yet). */
  readonly appliedIndex: number;
}

const retryCapMs = 5_000;
/**
 * While the link runs through a fallback (`--primary-gateways`, or a later gateway of ours), how
 * long until it tries our first gateway again; doubled after each try that fails, up to the cap.
 */
const preferFirstMs = 2_000;
const preferFirstCapMs = 60_000;

/**
 * A secondary's end of the federation link (docs/architecture.md §6c): one Replicate stream to the
 * primary through a gateway (our own exposing gateway once one is registered, else the primary's
 * from `--primary-gateways`), mutual TLS with our federation leaf against the primary's roots. It
 * sends our federation state whenever our gateways change, and applies every replicated state in
 * order: the primary's roots, the federation states, the config entries. When the primary is
 * unreachable everything replicated so far stays (it is in the store) and proxies keep working;
 * the stream is retried with backoff and converges when the primary is back.
 */
export class FederationReplicator {
  private client: FederationServiceClient | undefined;
  private call: grpc.ClientDuplexStream<FederationState, ReplicatedState> | undefined;
  private via: string | undefined;
  private connected = false;
  /** Since when the link is up or down (ms since the epoch). */
  private linkSince = Date.now();
  /** Every other secondary's link to the primary, as the primary last replicated it. */
  private replicatedLinks: ReadonlyMap<string, DatacenterLink> = new Map();
  private lastError: string | undefined;
  private appliedIndex = 0;
  private appliedRun = '';
  private readonly waiters = new Set<() => void>();
  private applying: Promise<void> = Promise.resolve();
  private retryTimer: NodeJS.Timeout | undefined;
  private preferTimer: NodeJS.Timeout | undefined;
  private preferDelayMs = preferFirstMs;
  private delayMs = 250;
  private lastSentState = '';
  private readonly unsubscribe: (() => void)[] = [];
  private stopped = false;
  /** A join for a new intermediate under way (after a root rotation in the primary). */
  private renewing: Promise<void> | undefined;
  private readonly aborted = new AbortController();

  constructor(private readonly opts: ReplicatorOptions) {}

  start(): void {
    this.unsubscribe.push(
      this.opts.catalog.subscribe((e) => {
        if (e.kind !== 'config-entry-changed' && e.instance.kind === 'mesh-gateway')
          this.onLocalGateways();
      }),
      this.opts.localServers.subscribe(() => this.sendState()),
    );
    void this.open();
  }

  status(): ReplicationStatus {
    const { connected, via, lastError, appliedIndex } = this;
    return { connected, via, lastError, appliedIndex };
  }

  /** Another datacenter's link as this secondary knows it (`isthmus members --wan`). */
  linkOf(dc: string): DatacenterLink {
    const ours = { up: this.connected, since: this.linkSince };
    return linkSeenFromSecondary(dc, this.opts.primary, ours, this.replicatedLinks);
  }

  /**
   * Resolves true once a replicated state of the primary's process `run` at `index` or later is
   * applied here, false after `timeoutMs` or when the link is down (a forwarded write answers
   * either way: it is on the primary and reaches us when the link is back).
   */
  async applied(run: string, index: number, timeoutMs: number): Promise<boolean> {
    const done = () => this.appliedRun === run && this.appliedIndex >= index;
    if (done()) return true;
    if (!this.connected || this.stopped) return false;
    return new Promise<boolean>((resolve) => {
      const finish = (ok: boolean) => {
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve(ok);
      };
      const check = () => {
        if (done()) finish(true);
        else if (!this.connected || this.stopped) finish(false);
      };
      const timer = setTimeout(() => finish(false), timeoutMs);
      this.waiters.add(check);
    });
  }

  private wake(): void {
    for (const check of [...this.waiters]) check();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const u of this.unsubscribe.splice(0)) u();
    clearTimeout(this.retryTimer);
    clearTimeout(this.preferTimer);
    this.aborted.abort();
    this.close();
    this.wake();
    await this.applying;
    await this.renewing;
  }

  private addresses(): string[] {
    const { catalog, datacenter, primaryGateways } = this.opts;
    return primaryDialAddresses(catalog, datacenter, primaryGateways);
  }

  /** Our gateways changed: report our state, and move the stream onto our own gateway. */
  private onLocalGateways(): void {
    this.sendState();
    const first = this.addresses()[0];
    if (this.call && first !== undefined && first !== this.via) {
      this.opts.logger.info(
        { from: this.via, to: first },
        'federation link moves to a new gateway',
      );
      this.close();
      this.attempt = 0;
      this.scheduleRetry(0);
    }
  }

  /**
   * Connected through an address that is not the first we would dial (our own exposing gateway
   * came up after we fell back to the primary's): try the first again after a while, so the link
   * ends up through our own gateway as Consul's does. A try that fails falls back as before.
   */
  private preferFirst(via: string): void {
    clearTimeout(this.preferTimer);
    const first = this.addresses()[0];
    if (first === undefined || first === via) {
      this.preferDelayMs = preferFirstMs;
      return;
    }
    this.preferTimer = setTimeout(() => {
      if (this.stopped || !this.connected || this.via !== via) return;
      this.opts.logger.info({ from: via, to: first }, 'federation link tries our own gateway');
      this.preferDelayMs = Math.min(preferFirstCapMs, this.preferDelayMs * 2);
      this.close();
      this.attempt = 0;
      this.scheduleRetry(0);
    }, this.preferDelayMs);
    this.preferTimer.unref();
  }

  private async open(): Promise<void> {
    if (this.stopped) return;
    const { ca, datacenter, nodeName, primary, logger } = this.opts;
    const addresses = this.addresses();
    const address = addresses[(this.attempt++ % Math.max(1, addresses.length)) | 0];
    if (address === undefined) return this.scheduleRetry();
    try {
      const leaf = await ca.leaf(federationIdentity(ca, datacenter, nodeName));
      if (this.stopped) return;
      this.client = dialFederation({
        address,
        serverName: federationServerName(primary),
        trust: { rootPems: ca.roots().roots.map((r) => r.certPem) },
        leaf,
      });
    } catch (err) {
      this.lastError = (err as Error).message;
      return this.scheduleRetry();
    }
    const call = this.client.replicate();
    this.call = call;
    this.via = address;
    this.lastSentState = '';
    // Indexes order the states of one primary process; a new stream may meet a restarted one.
    this.appliedIndex = 0;
    call.on('data', (msg: ReplicatedState) => {
      if (!this.connected) {
        logger.info({ primary, via: address }, 'federation link up');
        this.connected = true;
        this.linkSince = Date.now();
        this.preferFirst(address);
      }
      this.delayMs = 250;
      this.lastError = undefined;
      this.applying = this.applying.then(() => this.apply(msg));
    });
    call.on('error', (err: grpc.ServiceError) => this.lost(call, err.details || err.message));
    call.on('end', () => this.lost(call, 'the primary ended the stream'));
    this.sendState();
  }

  private attempt = 0;

  private lost(call: grpc.ClientDuplexStream<FederationState, ReplicatedState>, why: string): void {
    if (call !== this.call) return;
    if (this.connected || this.lastError !== why)
      this.opts.logger.warn(
        { primary: this.opts.primary, via: this.via, err: why },
        'federation link down; serving the last replicated state and retrying',
      );
    this.lastError = why;
    this.close();
    this.wake();
    this.scheduleRetry();
  }

  private close(): void {
    const call = this.call;
    this.call = undefined;
    if (this.connected) this.linkSince = Date.now();
    this.connected = false;
    call?.cancel();
    this.client?.close();
    this.client = undefined;
  }

  private scheduleRetry(delayMs = this.delayMs): void {
    if (this.stopped) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => void this.open(), delayMs);
    this.retryTimer.unref();
    this.delayMs = Math.min(retryCapMs, Math.round(this.delayMs * 1.5));
  }

  private sendState(): void {
    if (!this.call) return;
    const { catalog, datacenter, localServers } = this.opts;
    const state = localFederationState(catalog, datacenter, localServers.list(), Date.now());
    const key = JSON.stringify([state.meshGateways, state.servers]);
    if (key === this.lastSentState) return;
    this.lastSentState = key;
    this.call.write({
      datacenter: state.datacenter,
      meshGateways: state.meshGateways.map((g) => ({ address: g.address, port: g.port })),
      updatedAt: state.updatedAt,
      servers: (state.servers ?? []).map((m) => ({ ...m })),
      linkUp: false,
      linkSince: 0,
    });
  }

  /**
   * The primary's active root changed (a rotation's `reissue` phase, while both roots are still
   * trusted everywhere): ask it to sign a new intermediate, through the gateways as the first
   * join, and re-sign our leaves under it.
   */
  private renewIntermediate(): void {
    if (this.renewing) return;
    const { ca, datacenter, primary, secret, logger } = this.opts;
    this.renewing = joinPrimary({
      datacenter,
      primary,
      addresses: () => this.addresses(),
      secret,
      logger,
      signal: this.aborted.signal,
    })
      .then((joined) => ca.replaceIntermediate(joined))
      .catch((err: unknown) => {
        if (!this.stopped)
          logger.error({ err }, 'no new intermediate from the primary; retried on its next state');
      })
      .finally(() => {
        this.renewing = undefined;
      });
  }

  /** Applies one replicated state: roots, then federation states, then config entries. */
  private async apply(msg: ReplicatedState): Promise<void> {
    const { ca, states, catalog, logger } = this.opts;
    if (msg.index <= this.appliedIndex) return;
    try {
      if (msg.roots && msg.roots.trustDomain === ca.trustDomain && msg.roots.rootPems.length > 0)
        await ca.adoptRoots({ activeRootId: msg.roots.activeRootId, pems: msg.roots.rootPems });
      if (ca.needsNewIntermediate()) this.renewIntermediate();
      const good = msg.federationStates.filter((s) => !stateProblem(s, s.datacenter));
      await states.replaceAll(good.map(stateRecordOf));
      this.replicatedLinks = new Map(
        good.map((s) => [s.datacenter, { up: s.linkUp, since: Number(s.linkSince) }]),
      );
      const entries: ConfigEntry[] = [];
      for (const raw of msg.configEntries) {
        const parsed = parseReplicatedConfigEntry(safeJson(raw));
        if (parsed.ok) entries.push(parsed.value);
        else logger.warn({ err: parsed.error }, 'a replicated config entry was refused');
      }
      const changed = await catalog.replaceConfigEntries(entries);
      if (changed > 0) logger.info({ changed, index: msg.index }, 'config entries replicated');
      this.appliedIndex = msg.index;
      this.appliedRun = msg.run;
      this.wake();
    } catch (err) {
      logger.error({ err }, 'a replicated state could not be applied; waiting for the next');
    }
  }
}

function safeJson(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return undefined;
  }
}
