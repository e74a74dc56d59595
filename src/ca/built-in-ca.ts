import { randomBytes } from 'node:crypto';
import { IsthmusError } from '../errors.js';
import type { Logger } from '../log.js';
import { rootSpiffeId } from '../mesh/names.js';
import type { Store } from '../store/index.js';
import {
  type ClusterRecord,
  type RotationRecord,
  caRootsOf,
  commitActivate,
  commitReissued,
  commitFirstRoot,
  commitRetire,
  commitRotationStart,
  ensureCluster,
  loadRecords,
  rotationInProgress,
} from './ca-store.js';
import { signIntermediate } from './intermediate.js';
import { LeafCache, leafOutsideTrustDomain } from './leaf-cache.js';
import { RootKeyFiles } from './root-key-files.js';
import { type RootKeys, RootKeysInStore } from './root-keys-in-store.js';
import type { CaEvent, CaRoots, CertificateAuthority, Leaf, LeafIdentity } from './types.js';
import { type RootMaterial, type Signer, createRoot, issueLeaf, loadSigner } from './x509.js';

export interface CaOptions {
  /** Root private keys are kept under `<dataDir>/ca/`, unless `keysInStore`. */
  readonly dataDir: string;
  /**
   * Several servers share the store (etcd): root keys live in it, every server follows the CA
   * records through the store watch, and only the leader (`isLeader`) runs rotation steps.
   */
  readonly keysInStore?: boolean;
  readonly isLeader?: () => boolean;
  readonly logger: Logger;
  /** Leaf lifetime (default 72 h); leaves are renewed after 60% of it. */
  readonly leafTtlMs?: number;
  /**
   * Rotation: how long each phase lasts so proxies receive the new trust bundle or leaf (default 60
   * s).
   */
  readonly rotation?: { readonly phaseMs?: number };
  /** Trust domain of a new cluster (default `<cluster-id>.consul`); fixed once created. */
  readonly trustDomain?: string;
  /** Milliseconds since the epoch (tests). */
  readonly clock?: () => number;
  /** Whether a leaf identity is still used; unused ones are not renewed (LeafCacheDeps.inUse). */
  readonly leafInUse?: (identity: LeafIdentity) => boolean;
  /** Leaf issuances under way at once (default 2; LeafCacheDeps.maxIssuing). */
  readonly maxIssuing?: number;
}

export const defaultLeafTtlMs = 72 * 3600_000;
export const defaultPhaseMs = 60_000;
const rootValidityMs = 10 * 365 * 24 * 3600_000;

/**
 * Opens the cluster's CA: creates cluster ID, trust domain and root on first start; resumes a
 * rotation.
 */
/** Where CA private keys live: the store when servers share it (`keysInStore`), else files. */
export function rootKeysFor(
  store: Store,
  opts: Pick<CaOptions, 'dataDir' | 'keysInStore'>,
): RootKeys {
  return opts.keysInStore ? new RootKeysInStore(store) : new RootKeyFiles(opts.dataDir);
}

export async function openCa(store: Store, opts: CaOptions): Promise<CertificateAuthority> {
  const now = opts.clock ?? Date.now;
  const cluster = await ensureCluster(store, opts.trustDomain);
  if (opts.trustDomain !== undefined && opts.trustDomain !== cluster.trustDomain) {
    throw new IsthmusError(
      'failed_precondition',
      `this cluster's trust domain is ${cluster.trustDomain}; it cannot change to ${opts.trustDomain}`,
    );
  }
  const keys = rootKeysFor(store, opts);
  let records = await loadRecords(store);
  if (records.roots.length === 0) {
    const root = await newRoot(cluster.trustDomain, now());
    await keys.write(root.id, root.keyPem);
    if (await commitFirstRoot(store, root))
      opts.logger.info({ rootId: root.id, trustDomain: cluster.trustDomain }, 'CA root created');
    records = await loadRecords(store);
  }
  const removed = await keys.removeAllExcept(records.roots.map((r) => r.value.id));
  if (removed.length > 0)
    opts.logger.info({ files: removed }, 'removed key files of retired CA roots');
  const roots = caRootsOf(cluster.trustDomain, records);
  const signer = await signerFor(roots, roots.activeRootId, keys);
  const ca = new BuiltInCa(store, opts, cluster, keys, roots, signer, records.rotation);
  opts.logger.info(
    {
      clusterId: cluster.clusterId,
      trustDomain: cluster.trustDomain,
      activeRootId: roots.activeRootId,
      rotationPhase: records.rotation?.phase,
    },
    'CA ready',
  );
  return ca;
}

function newRoot(trustDomain: string, now: number): Promise<RootMaterial> {
  const name = `isthmus CA ${randomBytes(4).toString('hex')}`;
  return createRoot({ rootUri: rootSpiffeId(trustDomain), name, now, validityMs: rootValidityMs });
}

async function signerFor(roots: CaRoots, rootId: string, keys: RootKeys): Promise<Signer> {
  const root = roots.roots.find((r) => r.id === rootId);
  if (!root) throw new IsthmusError('internal', `CA root ${rootId} is not in the store`);
  return loadSigner(rootId, root.certPem, await keys.read(rootId));
}

/**
 * The built-in CA. Rotation is a persisted state machine (ca-store.ts): `trust-both` → (phaseMs)
 * → `reissue` → (phaseMs) → retired. Each step is one transaction, then a `roots-changed` event;
 * no phase removes trust in a root that signed a leaf a proxy may still present.
 */
class BuiltInCa implements CertificateAuthority {
  readonly clusterId: string;
  readonly trustDomain: string;
  private readonly listeners = new Set<(event: CaEvent) => void>();
  private readonly leaves: LeafCache;
  private readonly phaseMs: number;
  private readonly now: () => number;
  private rotationTimer: NodeJS.Timeout | undefined;
  private step: Promise<void> | undefined;
  private starting = false;
  private closed = false;
  private readonly unwatch: () => void;
  private refreshing: Promise<void> | undefined;
  private refreshAgain = false;

  constructor(
    private readonly store: Store,
    private readonly opts: CaOptions,
    cluster: ClusterRecord,
    private readonly keys: RootKeys,
    private current: CaRoots,
    private signer: Signer,
    private rotation: RotationRecord | undefined,
  ) {
    this.clusterId = cluster.clusterId;
    this.trustDomain = cluster.trustDomain;
    this.now = opts.clock ?? Date.now;
    this.phaseMs = opts.rotation?.phaseMs ?? defaultPhaseMs;
    this.leaves = new LeafCache({
      issue: (identity) => this.issue(identity),
      activeRootId: () => this.signer.rootId,
      now: this.now,
      ttlMs: opts.leafTtlMs ?? defaultLeafTtlMs,
      onRenewed: (leaf) => this.emit({ kind: 'leaf-renewed', leaf }),
      ...(opts.leafInUse ? { inUse: opts.leafInUse } : {}),
      ...(opts.maxIssuing !== undefined ? { maxIssuing: opts.maxIssuing } : {}),
      logger: opts.logger,
    });
    // Another server's rotation step (or `rotate`) reaches this one through the watch.
    this.unwatch = opts.keysInStore
      ? store.watch('ca/', (event) => {
          if (event.key === 'ca/rotation' || event.key.startsWith('ca/roots/'))
            this.onStoreChange();
        })
      : () => undefined;
    this.scheduleStep();
  }

  roots(): CaRoots {
    return this.current;
  }

  leaf(identity: LeafIdentity): Promise<Leaf> {
    if (this.closed) return Promise.reject(new IsthmusError('unavailable', 'the CA is closed'));
    const refused = leafOutsideTrustDomain(this.trustDomain, identity);
    if (refused) return Promise.reject(refused);
    return this.leaves.get(identity);
  }

  release(holder: string): void {
    this.leaves.release(holder);
  }

  async rotate(): Promise<void> {
    if (this.closed) throw new IsthmusError('unavailable', 'the CA is closed');
    if (this.rotation || this.starting) throw rotationInProgress();
    this.starting = true;
    try {
      const root = await newRoot(this.trustDomain, this.now());
      await this.keys.write(root.id, root.keyPem);
      this.rotation = await commitRotationStart(this.store, root, this.now()).catch(
        async (err: unknown) => {
          await this.keys.remove(root.id);
          throw err;
        },
      );
      await this.changed('CA rotation started: both roots trusted, the old root still signs');
    } finally {
      this.starting = false;
    }
    this.scheduleStep();
  }

  subscribe(listener: (event: CaEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  signIntermediate(csrPem: string, datacenter: string): Promise<string> {
    if (this.closed) return Promise.reject(new IsthmusError('unavailable', 'the CA is closed'));
    return signIntermediate(this.signer, csrPem, {
      trustDomainUri: rootSpiffeId(this.trustDomain),
      datacenter,
      now: this.now(),
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    this.unwatch();
    clearTimeout(this.rotationTimer);
    await this.refreshing;
    await this.step?.catch(() => undefined);
    this.leaves.close();
    this.listeners.clear();
  }

  private async issue(identity: LeafIdentity): Promise<Leaf> {
    const signer = this.signer;
    const issued = await issueLeaf(signer, {
      ...identity,
      now: this.now(),
      ttlMs: this.leaves.ttlMs,
    });
    return Object.freeze({
      spiffeId: identity.spiffeId,
      ...(identity.holder !== undefined ? { holder: identity.holder } : {}),
      rootId: signer.rootId,
      ...issued,
    });
  }

  private scheduleStep(): void {
    const rotation = this.rotation;
    if (!rotation || this.closed) return;
    const delay = Math.max(0, rotation.since + this.phaseMs - this.now());
    clearTimeout(this.rotationTimer);
    this.rotationTimer = setTimeout(() => void (this.step = this.runStep()), delay);
    this.rotationTimer.unref();
  }

  private onStoreChange(): void {
    if (this.closed) return;
    if (this.refreshing) {
      this.refreshAgain = true;
      return;
    }
    this.refreshing = this.refresh().finally(() => {
      this.refreshing = undefined;
      if (this.refreshAgain) {
        this.refreshAgain = false;
        this.onStoreChange();
      }
    });
  }

  /**
   * Takes the CA records as the store has them now: the rotation, the trusted roots and, when the
   * active root changed, the signer (this server's leaves are then re-issued with it).
   */
  private async refresh(): Promise<void> {
    try {
      const records = await loadRecords(this.store);
      const roots = caRootsOf(this.trustDomain, records);
      this.rotation = records.rotation;
      const resign = roots.activeRootId !== this.signer.rootId;
      if (resign) this.signer = await signerFor(roots, roots.activeRootId, this.keys);
      const before = this.current;
      this.current = roots;
      if (rootsKey(before) !== rootsKey(roots)) {
        this.opts.logger.info(
          { activeRootId: roots.activeRootId, trusted: roots.roots.map((r) => r.id) },
          'CA roots changed by another server',
        );
        this.emit({ kind: 'roots-changed', roots });
      }
      if (resign) await this.leaves.reissueAll();
      this.scheduleStep();
    } catch (err) {
      if (!this.closed)
        this.opts.logger.error({ err }, 'reading the CA records after a change failed');
    }
  }

  private async runStep(): Promise<void> {
    // Only the leader moves a rotation on; the others follow its commits through the watch.
    if (this.opts.isLeader && !this.opts.isLeader()) {
      clearTimeout(this.rotationTimer);
      this.rotationTimer = setTimeout(
        () => void (this.step = this.runStep()),
        Math.min(this.phaseMs, 2_000),
      );
      this.rotationTimer.unref();
      return;
    }
    try {
      await this.advance();
    } catch (err) {
      if (this.closed) return;
      const retryMs = Math.min(this.phaseMs, 10_000);
      this.opts.logger.error(
        { err, phase: this.rotation?.phase, retryMs },
        'CA rotation step failed; retrying',
      );
      clearTimeout(this.rotationTimer);
      this.rotationTimer = setTimeout(() => void (this.step = this.runStep()), retryMs);
      this.rotationTimer.unref();
      return;
    }
    this.scheduleStep();
  }

  private async advance(): Promise<void> {
    const rotation = this.rotation;
    if (!rotation || this.closed) return;
    if (rotation.phase === 'trust-both') {
      const signer = await signerFor(this.current, rotation.newRootId, this.keys);
      this.rotation = await commitActivate(this.store, rotation, this.now(), this.asLeader());
      this.signer = signer;
      await this.leaves.reissueAll();
      this.rotation = await commitReissued(this.store, this.rotation, this.now(), this.asLeader());
      await this.changed(
        'CA rotation: the new root signs and every leaf was re-issued; the old root is still trusted',
      );
    } else {
      // Again, in case a re-issue failed or a leaf was requested while activation was committing.
      await this.leaves.reissueAll();
      await commitRetire(this.store, rotation, this.asLeader());
      this.rotation = undefined;
      await this.keys.remove(rotation.oldRootId);
      await this.changed('CA rotation finished: the old root is retired');
    }
  }

  /** Rotation steps are fenced on the leader key when servers share the store. */
  private asLeader(): { asLeader?: boolean } {
    return this.opts.isLeader ? { asLeader: true } : {};
  }

  /** Reloads the roots from the store, logs the step and tells subscribers. */
  private async changed(message: string): Promise<void> {
    this.current = caRootsOf(this.trustDomain, await loadRecords(this.store));
    const { activeRootId } = this.current;
    this.opts.logger.info(
      { activeRootId, trusted: this.current.roots.map((r) => r.id), phase: this.rotation?.phase },
      message,
    );
    this.emit({ kind: 'roots-changed', roots: this.current });
  }

  private emit(event: CaEvent): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(event);
      } catch (err) {
        this.opts.logger.error({ err, event: event.kind }, 'CA event listener failed');
      }
    }
  }
}

function rootsKey(roots: CaRoots): string {
  return `${roots.activeRootId} ${roots.roots.map((r) => r.id).join(',')}`;
}
