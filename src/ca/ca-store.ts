import { randomUUID } from 'node:crypto';
import { IsthmusError } from '../errors.js';
import { trustDomainFor } from '../mesh/names.js';
import type { KeyValue, Store, StoreTxn } from '../store/index.js';
import type { TxnOptions } from '../store/store.js';
import {
  type ClusterRecord,
  type RootRecord,
  type RotationRecord,
  storedCluster,
  storedRoots,
  storedRotation,
} from './records.js';
import type { CaRoot, CaRoots } from './types.js';
import type { RootMaterial } from './x509.js';

/**
 * The CA's persisted state (records.ts). Every state change is one store transaction, so a crash
 * leaves either the old or the new state, and an interrupted rotation resumes from its recorded
 * phase.
 */
export type { ClusterRecord, RootRecord, RotationPhase, RotationRecord } from './records.js';

export interface CaRecords {
  readonly roots: readonly KeyValue<RootRecord>[];
  readonly rotation: RotationRecord | undefined;
}

/** The cluster ID and trust domain, created on first use and never changed afterwards. */
export async function ensureCluster(store: Store, trustDomain?: string): Promise<ClusterRecord> {
  return store.txn(async (tx) => {
    const existing = await storedCluster.get(tx);
    if (existing) return existing;
    const clusterId = randomUUID();
    const record: ClusterRecord = {
      clusterId,
      trustDomain: trustDomain ?? trustDomainFor(clusterId),
    };
    storedCluster.put(tx, record);
    return record;
  });
}

export async function loadRecords(store: Store): Promise<CaRecords> {
  const roots = await storedRoots.list(store);
  return { roots, rotation: await storedRotation.get(store) };
}

export function rootRecordOf(root: RootMaterial, active: boolean): RootRecord {
  const { id, name, serialNumber, signingKeyId, certPem } = root;
  return {
    id,
    name,
    serialNumber,
    signingKeyId,
    certPem,
    notBefore: root.notBefore.toISOString(),
    notAfter: root.notAfter.toISOString(),
    active,
  };
}

/** Stores the first root, unless a root exists already (then resolves false). */
export async function commitFirstRoot(store: Store, root: RootMaterial): Promise<boolean> {
  return store.txn(async (tx) => {
    if ((await tx.list(storedRoots.prefix)).length > 0) return false;
    storedRoots.put(tx, root.id, rootRecordOf(root, true));
    return true;
  });
}

/** Phase 1: trust the new root beside the active one. Refused while a rotation is under way. */
export async function commitRotationStart(
  store: Store,
  newRoot: RootMaterial,
  now: number,
): Promise<RotationRecord> {
  return store.txn(async (tx) => {
    if (await storedRotation.get(tx)) throw rotationInProgress();
    const active = (await storedRoots.list(tx)).find((kv) => kv.value.active);
    if (!active) throw new IsthmusError('internal', 'the CA has no active root');
    const rotation: RotationRecord = {
      phase: 'trust-both',
      oldRootId: active.value.id,
      newRootId: newRoot.id,
      since: now,
    };
    storedRoots.put(tx, newRoot.id, rootRecordOf(newRoot, false));
    storedRotation.put(tx, rotation);
    return rotation;
  });
}

/** Phase 2: the new root signs; both stay trusted. */
export async function commitActivate(
  store: Store,
  rotation: RotationRecord,
  now: number,
  opts: TxnOptions = {},
): Promise<RotationRecord> {
  return store.txn(async (tx) => {
    const roots = await storedRoots.list(tx);
    await expectPhase(tx, rotation);
    setActive(tx, roots, rotation.oldRootId, false);
    setActive(tx, roots, rotation.newRootId, true);
    const next: RotationRecord = { ...rotation, phase: 'reissue', since: now };
    storedRotation.put(tx, next);
    return next;
  }, opts);
}

/**
 * Phase 2's clock starts again once every leaf was re-issued: proxies get a whole phase to receive
 * their new leaves before the old root goes. Re-issuing thousands of leaves can outlast a phase,
 * and timed from activation the old root was retired before any proxy held a leaf of the new one.
 */
export async function commitReissued(
  store: Store,
  rotation: RotationRecord,
  now: number,
  opts: TxnOptions = {},
): Promise<RotationRecord> {
  return store.txn(async (tx) => {
    await expectPhase(tx, rotation);
    const next: RotationRecord = { ...rotation, since: now };
    storedRotation.put(tx, next);
    return next;
  }, opts);
}

/** Phase 3: the old root is no longer trusted; the rotation is over. */
export async function commitRetire(
  store: Store,
  rotation: RotationRecord,
  opts: TxnOptions = {},
): Promise<void> {
  await store.txn(async (tx) => {
    await expectPhase(tx, rotation);
    storedRoots.delete(tx, rotation.oldRootId);
    storedRotation.delete(tx);
  }, opts);
}

export function rotationInProgress(): IsthmusError {
  return new IsthmusError(
    'failed_precondition',
    'a CA root rotation is already in progress; wait for it to finish',
  );
}

async function expectPhase(tx: StoreTxn, rotation: RotationRecord): Promise<void> {
  const current = await storedRotation.get(tx);
  if (current?.phase !== rotation.phase || current.newRootId !== rotation.newRootId) {
    throw new IsthmusError(
      'failed_precondition',
      `CA rotation state changed underneath (expected phase ${rotation.phase})`,
    );
  }
}

function setActive(
  tx: StoreTxn,
  roots: readonly KeyValue<RootRecord>[],
  id: string,
  active: boolean,
): void {
  const kv = roots.find((r) => r.value.id === id);
  if (!kv) throw new IsthmusError('internal', `CA root ${id} is missing from the store`);
  storedRoots.put(tx, id, {
    ...kv.value,
    active,
    createIndex: kv.value.createIndex ?? kv.revision,
  });
}

/** The public view: active root first, then the others by age. */
export function caRootsOf(trustDomain: string, records: CaRecords): CaRoots {
  const roots: CaRoot[] = records.roots
    .map((kv) => caRootOf(kv))
    .sort(
      (a, b) =>
        Number(b.active) - Number(a.active) ||
        a.notBefore.getTime() - b.notBefore.getTime() ||
        (a.id < b.id ? -1 : 1),
    );
  const active = roots.find((r) => r.active);
  if (!active) throw new IsthmusError('internal', 'the CA has no active root');
  return Object.freeze({ trustDomain, activeRootId: active.id, roots: Object.freeze(roots) });
}

function caRootOf(kv: KeyValue<RootRecord>): CaRoot {
  const r = kv.value;
  return Object.freeze({
    id: r.id,
    certPem: r.certPem,
    active: r.active,
    notBefore: new Date(r.notBefore),
    notAfter: new Date(r.notAfter),
    name: r.name,
    serialNumber: r.serialNumber,
    signingKeyId: r.signingKeyId,
    createIndex: r.createIndex ?? kv.revision,
    modifyIndex: kv.revision,
  });
}
