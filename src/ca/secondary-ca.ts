import { X509Certificate } from 'node:crypto';
import { z } from 'zod';
import { IsthmusError } from '../errors.js';
import type { Store } from '../store/index.js';
import { SingleRecord } from '../store/records.js';
import type { CaOptions } from './built-in-ca.js';
import { defaultLeafTtlMs, rootKeysFor } from './built-in-ca.js';
import { ensureCluster } from './ca-store.js';
import { certificateId } from './intermediate.js';
import { LeafCache, leafOutsideTrustDomain } from './leaf-cache.js';
import type {
  CaEvent,
  CaRoot,
  CaRoots,
  CertificateAuthority,
  Leaf,
  LeafIdentity,
} from './types.js';
import { type Signer, issueLeaf, loadSigner } from './x509.js';

/**
 * A secondary datacenter's CA in WAN federation (docs/architecture.md §6c): it holds no root. The
 * primary signed an intermediate for this server's own key (the key file stays under
 * `<dataDir>/ca/`), leaves are signed by that intermediate and carry it in their chain, and the
 * trusted roots are the primary's, replicated over the federation link (`adoptRoots`). Rotation
 * happens in the primary only.
 */

export interface ReplicatedRoots {
  readonly activeRootId: string;
  /** Active first. */
  readonly pems: readonly string[];
}

type IntermediateRecord = {
  readonly primaryDatacenter: string;
  readonly trustDomain: string;
  readonly certPem: string;
  readonly roots: ReplicatedRoots;
};

const intermediateRecord: z.ZodType<IntermediateRecord> = z.strictObject({
  primaryDatacenter: z.string(),
  trustDomain: z.string(),
  certPem: z.string(),
  roots: z.strictObject({ activeRootId: z.string(), pems: z.array(z.string()) }),
});

/** `ca/intermediate`: the secondary's intermediate certificate and the primary's roots. */
export const storedIntermediate = new SingleRecord(
  { what: 'CA intermediate record', version: 1, schema: intermediateRecord },
  'ca/intermediate',
);

/** What a join with the primary returned, with the key made here. */
export interface JoinedCa {
  readonly primaryDatacenter: string;
  readonly trustDomain: string;
  readonly intermediatePem: string;
  readonly keyPem: string;
  readonly roots: ReplicatedRoots;
}

/** Whether this server joined a primary already (its intermediate is stored). */
export async function hasIntermediate(store: Store): Promise<boolean> {
  return (await storedIntermediate.get(store)) !== undefined;
}

/**
 * Keeps what a join returned: the key where the CA keeps keys (a 0600 file, or the store when
 * servers share etcd), the certificate and roots in the store.
 */
export async function saveJoinedCa(
  store: Store,
  keys: Pick<CaOptions, 'dataDir' | 'keysInStore'>,
  joined: JoinedCa,
): Promise<void> {
  const id = certificateId(joined.intermediatePem);
  await rootKeysFor(store, keys).write(id, joined.keyPem);
  await store.txn(async (tx) => {
    storedIntermediate.put(tx, {
      primaryDatacenter: joined.primaryDatacenter,
      trustDomain: joined.trustDomain,
      certPem: joined.intermediatePem,
      roots: joined.roots,
    });
  });
}

/** A secondary's CA as the federation link drives it. */
export interface FederatedCa extends CertificateAuthority {
  /** The primary's roots as replicated. */
  adoptRoots(roots: ReplicatedRoots): Promise<void>;
  /** Whether the primary's active root did not sign our intermediate (its root rotated). */
  needsNewIntermediate(): boolean;
  /** A new intermediate from the primary: kept, then every leaf in use re-signed under it. */
  replaceIntermediate(joined: JoinedCa): Promise<void>;
}

/** Opens the CA of a secondary that has joined (`saveJoinedCa`). */
export async function openSecondaryCa(
  store: Store,
  opts: CaOptions & { readonly primaryDatacenter: string },
): Promise<FederatedCa> {
  const record = await storedIntermediate.get(store);
  if (!record)
    throw new IsthmusError('internal', 'this secondary has no intermediate CA; join first');
  if (record.primaryDatacenter !== opts.primaryDatacenter)
    throw new IsthmusError(
      'failed_precondition',
      `this server joined primary datacenter ${record.primaryDatacenter}, not ${opts.primaryDatacenter}; start it with --primary-datacenter ${record.primaryDatacenter}, or with an empty data directory`,
    );
  const cluster = await ensureCluster(store, record.trustDomain);
  if (cluster.trustDomain !== record.trustDomain)
    throw new IsthmusError(
      'failed_precondition',
      `this data directory holds trust domain ${cluster.trustDomain}, not the primary's ${record.trustDomain}; a secondary starts with an empty data directory`,
    );
  const id = certificateId(record.certPem);
  const signer = await loadSigner(id, record.certPem, await rootKeysFor(store, opts).read(id));
  opts.logger.info(
    { trustDomain: record.trustDomain, intermediate: id, primary: record.primaryDatacenter },
    'CA ready (secondary: leaves signed by the intermediate from the primary)',
  );
  return new SecondaryCa(store, opts, cluster.clusterId, record, signer);
}

class SecondaryCa implements FederatedCa {
  readonly clusterId: string;
  readonly trustDomain: string;
  private readonly listeners = new Set<(event: CaEvent) => void>();
  private readonly leaves: LeafCache;
  private current: CaRoots;
  private closed = false;

  constructor(
    private readonly store: Store,
    private readonly opts: CaOptions & { readonly primaryDatacenter: string },
    clusterId: string,
    private record: IntermediateRecord,
    private signer: Signer,
  ) {
    this.clusterId = clusterId;
    this.trustDomain = record.trustDomain;
    this.current = rootsOf(record.trustDomain, record.roots);
    const now = opts.clock ?? Date.now;
    this.leaves = new LeafCache({
      issue: (identity) => this.issue(identity),
      activeRootId: () => this.signer.rootId,
      now,
      ttlMs: opts.leafTtlMs ?? defaultLeafTtlMs,
      onRenewed: (leaf) => this.emit({ kind: 'leaf-renewed', leaf }),
      ...(opts.leafInUse ? { inUse: opts.leafInUse } : {}),
      ...(opts.maxIssuing !== undefined ? { maxIssuing: opts.maxIssuing } : {}),
      logger: opts.logger,
    });
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

  rotate(): Promise<void> {
    return Promise.reject(
      new IsthmusError(
        'failed_precondition',
        `the CA root is rotated in the primary datacenter ${this.opts.primaryDatacenter}; this secondary follows its roots`,
      ),
    );
  }

  /** The primary's roots as replicated; stored, then every proxy is told (`roots-changed`). */
  async adoptRoots(roots: ReplicatedRoots): Promise<void> {
    const same =
      roots.activeRootId === this.record.roots.activeRootId &&
      roots.pems.join('\n') === this.record.roots.pems.join('\n');
    if (same || this.closed) return;
    const next = rootsOf(this.trustDomain, roots);
    const record = { ...this.record, roots };
    await this.store.txn(async (tx) => {
      storedIntermediate.put(tx, record);
    });
    this.record = record;
    this.current = next;
    this.opts.logger.info(
      { activeRootId: next.activeRootId, trusted: next.roots.map((r) => r.id) },
      "adopted the primary's CA roots",
    );
    this.emit({ kind: 'roots-changed', roots: next });
  }

  needsNewIntermediate(): boolean {
    const active = this.current.roots.find((r) => r.active);
    if (!active || this.closed) return false;
    const intermediate = new X509Certificate(this.record.certPem);
    const root = new X509Certificate(active.certPem);
    return !(intermediate.checkIssued(root) && intermediate.verify(root.publicKey));
  }

  /**
   * After a root rotation in the primary: the intermediate it signed with its new active root
   * replaces ours (key where the CA keeps keys, certificate in the store), and the leaves in use
   * are re-signed under it (`leaf-renewed` each), while the old root is still trusted everywhere.
   */
  async replaceIntermediate(joined: JoinedCa): Promise<void> {
    if (this.closed) return;
    if (joined.trustDomain !== this.trustDomain)
      throw new IsthmusError(
        'failed_precondition',
        `the primary's new intermediate is for trust domain ${joined.trustDomain}, not ${this.trustDomain}`,
      );
    const id = certificateId(joined.intermediatePem);
    await rootKeysFor(this.store, this.opts).write(id, joined.keyPem);
    const signer = await loadSigner(id, joined.intermediatePem, joined.keyPem);
    const record = { ...this.record, certPem: joined.intermediatePem };
    await this.store.txn(async (tx) => {
      storedIntermediate.put(tx, record);
    });
    this.record = record;
    this.signer = signer;
    this.opts.logger.info(
      { intermediate: id, activeRootId: this.current.activeRootId },
      'new intermediate CA from the primary; re-signing leaves',
    );
    await this.leaves.reissueAll();
  }

  subscribe(listener: (event: CaEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.leaves.close();
    this.listeners.clear();
  }

  /** A leaf whose chain carries the intermediate, so a peer trusting only the root verifies it. */
  private async issue(identity: LeafIdentity): Promise<Leaf> {
    const { signer, record } = this;
    const issued = await issueLeaf(signer, {
      ...identity,
      now: (this.opts.clock ?? Date.now)(),
      ttlMs: this.leaves.ttlMs,
    });
    return Object.freeze({
      spiffeId: identity.spiffeId,
      ...(identity.holder !== undefined ? { holder: identity.holder } : {}),
      rootId: signer.rootId,
      ...issued,
      certPem: `${issued.certPem.trim()}\n${record.certPem.trim()}\n`,
    });
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

function rootsOf(trustDomain: string, replicated: ReplicatedRoots): CaRoots {
  const roots: CaRoot[] = replicated.pems.map((pem) => {
    const cert = new X509Certificate(pem);
    const id = certificateId(pem);
    return Object.freeze({
      id,
      certPem: pem,
      active: id === replicated.activeRootId,
      notBefore: new Date(cert.validFrom),
      notAfter: new Date(cert.validTo),
      name: cert.subject.replace(/^CN=/, ''),
      serialNumber: Number.parseInt(cert.serialNumber.slice(-12), 16),
    });
  });
  if (!roots.some((r) => r.active))
    throw new IsthmusError('internal', "the primary's replicated roots have no active root");
  return Object.freeze({
    trustDomain,
    activeRootId: replicated.activeRootId,
    roots: Object.freeze(roots.sort((a, b) => Number(b.active) - Number(a.active))),
  });
}
