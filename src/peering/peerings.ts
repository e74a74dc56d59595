import { X509Certificate, randomUUID } from 'node:crypto';
import { IsthmusError } from '../errors.js';
import { secretMatches } from '../acl/token-secret.js';
import type { Logger } from '../log.js';
import type { Store, StoreEvent, StoreTxn, TxnOptions } from '../store/index.js';
import { storedPeerings, storedSecrets } from './records.js';
import { type AcceptorSecrets, newSecret, sha256Hex } from './secrets.js';
import { type PeeringToken, dialAddressesOf } from './token.js';
import {
  type Peering,
  type PeeringEvent,
  type PeeringState,
  type RemoteInfo,
  type StreamStatus,
  emptyStreamStatus,
  isDialer,
} from './types.js';

/** What goes into this cluster's tokens. */
export interface LocalPeeringInfo {
  readonly datacenter: string;
  readonly partition: string;
  /** `server.<dc>.peering.<td>` */
  readonly serverName: string;
  rootPems(): readonly string[];
  /** `--advertise-addr`, else the bound peering address; empty when neither is dialable. */
  serverAddresses(): readonly string[];
  /**
   * The local mesh gateways' WAN addresses when the `mesh` config entry peers through them
   * (`Peering.PeerThroughMeshGateways`), else empty: tokens then carry these instead.
   */
  meshGatewayAddresses?(): readonly string[];
}

export interface PeeringsOptions {
  readonly local: LocalPeeringInfo;
  readonly logger: Logger;
  readonly now?: () => number;
  /** Longest wait for the deletion hook (telling the peer) before the record is removed anyway. */
  readonly deletionHookTimeoutMs?: number;
}

export interface GenerateTokenInput {
  readonly PeerName: string;
  readonly Meta?: Readonly<Record<string, string>> | undefined;
  readonly ServerExternalAddresses?: readonly string[] | undefined;
}

export interface ExchangeSecretInput {
  /** The acceptor's ID for the peering (the token's PeerID). */
  readonly peerId: string;
  readonly establishmentSecret: string;
  readonly dialerRootPems: readonly string[];
  readonly dialerTrustDomain: string;
  readonly dialerRemote: RemoteInfo;
}

export interface EstablishedInput {
  readonly name: string;
  readonly token: PeeringToken;
  readonly streamSecret: string;
  readonly meta?: Readonly<Record<string, string>> | undefined;
}

/**
 * Runs before a DELETING peering is removed (the stream engine sends `Terminated`, drops imports).
 */
export type DeletionHook = (peering: Peering) => Promise<void>;

export type PeeringPatch = Partial<
  Pick<Peering, 'peerCaPems' | 'peerTrustDomain' | 'peerServerAddresses'>
>;

const usedSecret = () =>
  new IsthmusError(
    'permission_denied',
    'establishment secret already used or unknown: generate a new token',
  );
const badStreamSecret = () =>
  new IsthmusError('permission_denied', 'stream secret is not valid for this peering');
const notFound = (name: string) =>
  new IsthmusError('not_found', `peering ${JSON.stringify(name)} not found`);

/**
 * Peering records and their secrets, in the Store (everything survives a restart), with an
 * in-memory copy kept in step by a Store watch and typed change events. Secrets are read from the
 * Store when needed and never appear in a record, an event or a log line.
 */
export class Peerings {
  private readonly byName = new Map<string, Peering>();
  private readonly listeners = new Set<(event: PeeringEvent) => void>();
  private readonly deletions = new Map<string, Promise<void>>();
  private readonly now: () => number;
  private readonly unwatch: () => void;
  private deletionHook: DeletionHook | undefined;
  private closed = false;

  private constructor(
    private readonly store: Store,
    private readonly opts: PeeringsOptions,
  ) {
    this.now = opts.now ?? Date.now;
    this.unwatch = store.watch(storedPeerings.prefix, (event) => this.apply(event));
  }

  static async open(store: Store, opts: PeeringsOptions): Promise<Peerings> {
    const peerings = new Peerings(store, opts);
    for (const { value } of await storedPeerings.list(store))
      peerings.byName.set(value.name, value);
    return peerings;
  }

  /**
   * Carries on with deletions a restart interrupted. Call once the deletion hook is installed, so
   * the peer is told about those too.
   */
  resumeDeletions(): void {
    for (const p of this.byName.values()) if (p.state === 'DELETING') this.finishDeletion(p.name);
  }

  list(): readonly Peering[] {
    return [...this.byName.values()].sort((a, b) =>
      a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
    );
  }

  read(name: string): Peering | undefined {
    return this.byName.get(name);
  }

  /** The peering whose own ID is `id` (the acceptor looks up the PeerID a dialer sends). */
  byId(id: string): Peering | undefined {
    for (const p of this.byName.values()) if (p.id === id) return p;
    return undefined;
  }

  /** The peering whose peer's ID is `peerId` (a dialer's record for the acceptor's ID). */
  byPeerId(peerId: string): Peering | undefined {
    if (peerId === '') return undefined;
    for (const p of this.byName.values()) if (p.peerId === peerId) return p;
    return undefined;
  }

  subscribe(listener: (event: PeeringEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Installs what runs before a deleted peering is removed (at most one; the lead wires the stream
   * engine).
   */
  setDeletionHook(hook: DeletionHook | undefined): void {
    this.deletionHook = hook;
  }

  /**
   * Acceptor: a token for `PeerName`, creating the peering (PENDING) or giving it a new
   * establishment secret, which invalidates any unused token. An established stream is left alone:
   * its state and stream secrets stay (a TERMINATED peering starts over as PENDING).
   */
  async generateToken(
    input: GenerateTokenInput,
  ): Promise<{ readonly token: PeeringToken; readonly peering: Peering }> {
    const local = this.opts.local;
    const external = input.ServerExternalAddresses ?? [];
    const viaGateways = local.meshGatewayAddresses?.() ?? [];
    const serverAddresses =
      external.length > 0
        ? external
        : viaGateways.length > 0
          ? viaGateways
          : local.serverAddresses();
    if (serverAddresses.length === 0) {
      throw new IsthmusError(
        'failed_precondition',
        'this server has no dialable peering address (it listens on a wildcard address): start it with --advertise-addr HOST:PORT or pass ServerExternalAddresses',
      );
    }
    const secret = newSecret();
    const peering = await this.write(async (tx, revision) => {
      const existing = await storedPeerings.get(tx, input.PeerName);
      if (existing && isDialer(existing)) {
        throw new IsthmusError(
          'already_exists',
          `peering ${JSON.stringify(input.PeerName)} was established from this cluster with the peer's token: delete it before generating a token for that name`,
          'PeerName',
        );
      }
      if (existing?.state === 'DELETING') throw deleting(input.PeerName);
      const next = existing ? regenerated(existing, input, revision) : created(input, revision);
      const secrets = existing ? await this.acceptorSecrets(tx, existing.id) : undefined;
      const keepStream = existing !== undefined && existing.state !== 'TERMINATED';
      const nextSecrets: AcceptorSecrets =
        keepStream && secrets
          ? { ...secrets, establishmentSha256: sha256Hex(secret) }
          : { role: 'acceptor', establishmentSha256: sha256Hex(secret) };
      storedSecrets.put(tx, next.id, nextSecrets);
      return storedPeerings.put(tx, next.name, next);
    });
    this.opts.logger.info(
      { peering: peering.name, peeringId: peering.id, state: peering.state },
      'peering token generated',
    );
    const token: PeeringToken = {
      CA: [...local.rootPems()],
      ServerAddresses: [...serverAddresses],
      ManualServerAddresses: [...external],
      ServerName: local.serverName,
      PeerID: peering.id,
      EstablishmentSecret: secret,
      Remote: { Partition: local.partition, Datacenter: local.datacenter },
    };
    return { token, peering };
  }

  /**
   * Acceptor: trades a token's establishment secret for a new stream secret, consuming it inside
   * one Store transaction (transactions are serializable: of concurrent callers exactly one wins),
   * and pins the dialer's roots as the peering's peerCaPems. The state stays as it is until the
   * stream opens. `check` runs once the secret matched and before anything is written: throw from
   * it (the dialer's trust-domain claim is refused) to leave everything, the secret included, as
   * it was, and to tell only a caller holding the secret why.
   */
  async exchangeSecret(
    input: ExchangeSecretInput,
    check?: (peering: Peering) => void,
  ): Promise<{ readonly streamSecret: string; readonly peering: Peering }> {
    const streamSecret = newSecret();
    const peering = await this.write(async (tx, revision) => {
      const name = this.byId(input.peerId)?.name;
      const record = name === undefined ? undefined : await storedPeerings.get(tx, name);
      const secrets = record ? await this.acceptorSecrets(tx, record.id) : undefined;
      const valid = secretMatches(input.establishmentSecret, secrets?.establishmentSha256);
      if (
        !record ||
        record.id !== input.peerId ||
        !secrets ||
        !valid ||
        record.state === 'DELETING'
      )
        throw usedSecret();
      check?.(record);
      const { establishmentSha256: _consumed, ...rest } = secrets;
      storedSecrets.put(tx, record.id, { ...rest, pendingStreamSha256: sha256Hex(streamSecret) });
      const next: Peering = {
        ...record,
        peerCaPems: [...input.dialerRootPems],
        peerTrustDomain: input.dialerTrustDomain,
        remote: {
          partition: input.dialerRemote.partition || 'default',
          datacenter: input.dialerRemote.datacenter,
        },
        modifyIndex: revision,
      };
      return storedPeerings.put(tx, next.name, next);
    });
    this.opts.logger.info(
      { peering: peering.name, peeringId: peering.id, peerTrustDomain: peering.peerTrustDomain },
      'peering secret exchanged; dialer roots pinned',
    );
    return { streamSecret, peering };
  }

  /** Dialer: refuses early (before the secret is spent) when `name` cannot take this token. */
  checkCanEstablish(name: string, token: PeeringToken): void {
    const existing = this.byName.get(name);
    if (existing) establishConflict(existing, token);
  }

  /**
   * Dialer: stores the peering as ESTABLISHING with its stream secret after a successful exchange.
   */
  async recordEstablished(input: EstablishedInput): Promise<Peering> {
    const { name, token } = input;
    const peering = await this.write(async (tx, revision) => {
      const existing = await storedPeerings.get(tx, name);
      if (existing) establishConflict(existing, token);
      const samePeer = existing?.peerId === token.PeerID && existing.state !== 'TERMINATED';
      const next: Peering = {
        id: existing?.id ?? randomUUID(),
        name: name,
        state: 'ESTABLISHING',
        peerId: token.PeerID,
        peerServerName: token.ServerName,
        peerServerAddresses: [...dialAddressesOf(token)],
        ...(token.ManualServerAddresses.length > 0 && { manualServerAddresses: true }),
        peerCaPems: [...token.CA],
        peerTrustDomain: trustDomainOf(token),
        meta: { ...(input.meta ?? existing?.meta ?? {}) },
        remote: {
          partition: token.Remote.Partition || 'default',
          datacenter: token.Remote.Datacenter,
        },
        streamStatus: samePeer && existing ? existing.streamStatus : emptyStreamStatus,
        createIndex: existing?.createIndex ?? revision,
        modifyIndex: revision,
      };
      storedSecrets.put(tx, next.id, { role: 'dialer', streamSecret: input.streamSecret });
      return storedPeerings.put(tx, name, next);
    });
    this.opts.logger.info(
      {
        peering: peering.name,
        peeringId: peering.id,
        peerId: peering.peerId,
        peerServerName: peering.peerServerName,
      },
      'peering established; secret exchanged',
    );
    return peering;
  }

  /**
   * Acceptor, for the stream engine's `Open`: the peering whose ID is `peerId` if `streamSecret`
   * is its active or pending stream secret (compared in constant time); else permission_denied and
   * nothing changes. Opening with the pending secret makes it the active one. Returns the record in
   * whatever state it is (DELETING and TERMINATED included: the caller decides). `check` runs after
   * the secret matched and before anything is written: throw from it (e.g. a client certificate
   * that does not chain to `peerCaPems`) to refuse with nothing changed.
   */
  async verifyStream(
    peerId: string,
    streamSecret: string,
    check?: (peering: Peering) => void,
  ): Promise<Peering> {
    const known = this.byId(peerId);
    const secrets = known ? await storedSecrets.get(this.store, known.id) : undefined;
    const acceptor = secrets?.role === 'acceptor' ? secrets : undefined;
    const active = secretMatches(streamSecret, acceptor?.activeStreamSha256);
    const pending = secretMatches(streamSecret, acceptor?.pendingStreamSha256);
    if (!known || !acceptor || !(active || pending)) throw badStreamSecret();
    check?.(known);
    if (pending) await this.promotePendingSecret(known.id, acceptor.pendingStreamSha256!);
    return this.byName.get(known.name) ?? known;
  }

  /** Dialer, for the stream engine's `Open`: the stream secret to send (never log it). */
  async streamSecretOf(name: string): Promise<string> {
    const p = this.byName.get(name);
    const secrets = p ? await storedSecrets.get(this.store, p.id) : undefined;
    if (!p || secrets?.role !== 'dialer')
      throw new IsthmusError(
        'not_found',
        `peering ${JSON.stringify(name)} has no dialer stream secret`,
      );
    return secrets.streamSecret;
  }

  /**
   * Merges `patch` into the peering's streamStatus. This and the other writes of the stream
   * engine (`setState`, `updatePeer`) commit as the cluster leader only, who holds the streams: a
   * server that lost its lease cannot overwrite what the new leader's stream reports.
   */
  async setStreamStatus(name: string, patch: Partial<StreamStatus>): Promise<Peering> {
    return this.update(name, (p) => ({ ...p, streamStatus: { ...p.streamStatus, ...patch } }), {
      asLeader: true,
    });
  }

  /**
   * Sets the state (and `streamStatus.lastError` when given). A DELETING peering stays DELETING
   * whatever the stream reports; it is removed once the peer has been told.
   */
  async setState(name: string, state: PeeringState, lastError?: string): Promise<Peering> {
    return this.update(
      name,
      (p) => {
        if (p.state === 'DELETING' && state !== 'DELETING') return p;
        const status = lastError === undefined ? p.streamStatus : { ...p.streamStatus, lastError };
        return { ...p, state, streamStatus: status };
      },
      { asLeader: true },
    );
  }

  /** The peer's trust bundle and (dialer) server addresses as the stream replicates them. */
  async updatePeer(name: string, patch: PeeringPatch): Promise<Peering> {
    return this.update(name, (p) => ({ ...p, ...definedOnly(patch) }), { asLeader: true });
  }

  /**
   * Marks the peering DELETING (DeletedAt = now) and answers; in the background the deletion hook
   * runs (bounded) and then the record and its secrets are removed. Resumes after a restart.
   */
  async delete(name: string): Promise<Peering> {
    const deletedAt = new Date(this.now()).toISOString();
    const p = await this.update(name, (p) =>
      p.state === 'DELETING' ? p : { ...p, state: 'DELETING', deletedAt: deletedAt },
    );
    this.opts.logger.info({ peering: p.name, peeringId: p.id }, 'peering deleting');
    this.finishDeletion(name);
    return p;
  }

  /** Resolves once every deletion started so far has finished (tests, shutdown). */
  async settled(): Promise<void> {
    while (this.deletions.size > 0) await Promise.all(this.deletions.values());
  }

  /**
   * Stops events and new work. Deletions in flight are not awaited: they resume after a restart.
   */
  async close(): Promise<void> {
    this.closed = true;
    this.unwatch();
    this.listeners.clear();
  }

  private finishDeletion(name: string): void {
    if (this.deletions.has(name) || this.closed) return;
    const run = this.runDeletion(name).finally(() => this.deletions.delete(name));
    this.deletions.set(name, run);
  }

  private async runDeletion(name: string): Promise<void> {
    const p = this.byName.get(name);
    if (!p) return;
    const hook = this.deletionHook;
    if (hook) {
      const timeoutMs = this.opts.deletionHookTimeoutMs ?? 10_000;
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
      await Promise.race([hook(p), timeout])
        .catch((err: unknown) =>
          this.opts.logger.warn(
            { err, peering: name },
            'peering deletion hook failed; removing the peering anyway',
          ),
        )
        .finally(() => clearTimeout(timer));
    }
    if (this.closed) return;
    await this.store
      .txn(async (tx) => {
        const current = await storedPeerings.get(tx, name);
        if (current?.id !== p.id || current.state !== 'DELETING') return;
        storedPeerings.delete(tx, name);
        storedSecrets.delete(tx, p.id);
      })
      .catch((err: unknown) =>
        this.opts.logger.error({ err, peering: name }, 'removing a deleted peering failed'),
      );
    this.opts.logger.info({ peering: name, peeringId: p.id }, 'peering deleted');
  }

  private async promotePendingSecret(id: string, pendingSha256: string): Promise<void> {
    await this.store.txn(async (tx) => {
      const s = await storedSecrets.get(tx, id);
      if (s?.role !== 'acceptor' || s.pendingStreamSha256 !== pendingSha256) return;
      storedSecrets.put(tx, id, {
        role: 'acceptor',
        establishmentSha256: s.establishmentSha256,
        activeStreamSha256: pendingSha256,
      });
    });
  }

  private async acceptorSecrets(tx: StoreTxn, id: string): Promise<AcceptorSecrets | undefined> {
    const s = await storedSecrets.get(tx, id);
    return s?.role === 'acceptor' ? s : undefined;
  }

  private async update(
    name: string,
    fn: (p: Peering) => Peering,
    opts: TxnOptions = {},
  ): Promise<Peering> {
    return this.write(async (tx, revision) => {
      const p = await storedPeerings.get(tx, name);
      if (!p) throw notFound(name);
      const next = fn(p);
      if (next === p) return p;
      return storedPeerings.put(tx, name, { ...next, modifyIndex: revision });
    }, opts);
  }

  /** A watched record that fails its schema is logged and leaves the in-memory copy as it was. */
  private decode(event: Extract<StoreEvent, { kind: 'put' }>): Peering | undefined {
    try {
      return storedPeerings.decodeEvent(event);
    } catch (err) {
      this.opts.logger.error({ err, key: event.key }, 'invalid peering record ignored');
      return undefined;
    }
  }

  /**
   * One Store transaction; `revision` is the one it commits at (Store transactions are serialized).
   */
  private write<T>(
    fn: (tx: StoreTxn, revision: number) => Promise<T>,
    opts: TxnOptions = {},
  ): Promise<T> {
    if (this.closed) return Promise.reject(new IsthmusError('unavailable', 'peerings are closed'));
    return this.store.txn(async (tx) => fn(tx, (await this.store.revision()) + 1), opts);
  }

  /** Store watch → in-memory copy → events, in commit order. */
  private apply(event: StoreEvent): void {
    const name = storedPeerings.idOf(event.key);
    const previous = this.byName.get(name);
    let out: PeeringEvent | undefined;
    if (event.kind === 'put') {
      const peering = this.decode(event);
      if (!peering) return;
      this.byName.set(name, peering);
      out = { kind: 'peering-upserted', peering, previous };
    } else if (previous) {
      this.byName.delete(name);
      out = { kind: 'peering-removed', peering: previous };
    }
    if (!out) return;
    for (const listener of [...this.listeners]) {
      try {
        listener(out);
      } catch (err) {
        this.opts.logger.error({ err, event: out.kind }, 'peering event listener failed');
      }
    }
  }
}

function created(input: GenerateTokenInput, revision: number): Peering {
  return {
    id: randomUUID(),
    name: input.PeerName,
    state: 'PENDING',
    peerId: '',
    peerServerName: '',
    peerServerAddresses: [],
    peerCaPems: [],
    peerTrustDomain: '',
    meta: { ...(input.Meta ?? {}) },
    remote: { partition: '', datacenter: '' },
    streamStatus: emptyStreamStatus,
    createIndex: revision,
    modifyIndex: revision,
  };
}

function regenerated(existing: Peering, input: GenerateTokenInput, revision: number): Peering {
  const meta = { ...(input.Meta ?? existing.meta) };
  if (existing.state !== 'TERMINATED') return { ...existing, meta: meta, modifyIndex: revision };
  return {
    ...created(input, revision),
    id: existing.id,
    meta: meta,
    createIndex: existing.createIndex,
  };
}

function establishConflict(existing: Peering, token: PeeringToken): void {
  const name = JSON.stringify(existing.name);
  if (!isDialer(existing)) {
    throw new IsthmusError(
      'already_exists',
      `peering ${name} was created here by generating a token (this cluster accepts it): use another name or delete it first`,
      'PeerName',
    );
  }
  if (existing.state === 'DELETING') throw deleting(existing.name);
  if (existing.peerId !== token.PeerID && existing.state !== 'TERMINATED') {
    throw new IsthmusError(
      'already_exists',
      `peering ${name} already exists with another peer: delete it first or use another name`,
      'PeerName',
    );
  }
}

const deleting = (name: string) =>
  new IsthmusError(
    'failed_precondition',
    `peering ${JSON.stringify(name)} is being deleted: wait until it is gone`,
    'PeerName',
  );

/**
 * The acceptor's trust domain: its root's `spiffe://<td>` URI SAN, else from
 * `server.<dc>.peering.<td>`.
 */
function trustDomainOf(token: PeeringToken): string {
  for (const pem of token.CA) {
    try {
      const match = /URI:spiffe:\/\/([^,/\s]+)/.exec(new X509Certificate(pem).subjectAltName ?? '');
      if (match) return match[1]!;
    } catch {
      // parseToken checked every CA parses; keep looking anyway
    }
  }
  return /^server\.[^.]+\.peering\.(.+)$/.exec(token.ServerName)?.[1] ?? '';
}

function definedOnly(patch: PeeringPatch): PeeringPatch {
  return Object.fromEntries(
    Object.entries(patch).filter(([, v]) => v !== undefined),
  ) as PeeringPatch;
}
