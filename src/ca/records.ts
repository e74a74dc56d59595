import { z } from 'zod';
import { RecordCollection, SingleRecord } from '../store/records.js';

/**
 * The CA's records in the Store (keys under `ca/`): the cluster identity, the roots (certificates
 * only: private keys are files, root-key-files.ts) and the rotation in progress.
 */

export type ClusterRecord = {
  readonly clusterId: string;
  readonly trustDomain: string;
};

export type RootRecord = {
  readonly id: string;
  readonly name: string;
  readonly serialNumber: number;
  readonly signingKeyId: string;
  readonly certPem: string;
  readonly notBefore: string;
  readonly notAfter: string;
  readonly active: boolean;
  /** Set when the record is rewritten (activation): the revision of its first write. */
  readonly createIndex?: number | undefined;
};

/**
 * Rotation phases (docs/architecture.md §2 "Built-in CA"): `trust-both` — the new root is trusted,
 * the old one still signs; `reissue` — the new root signs and every leaf is re-issued, the old one
 * is still trusted. Leaving `reissue` retires the old root and ends the rotation.
 */
export type RotationPhase = 'trust-both' | 'reissue';

export type RotationRecord = {
  readonly phase: RotationPhase;
  readonly oldRootId: string;
  readonly newRootId: string;
  /** When the phase began (ms since the epoch): the next step is due `phaseMs` later. */
  readonly since: number;
};

const clusterRecord: z.ZodType<ClusterRecord> = z.strictObject({
  clusterId: z.string(),
  trustDomain: z.string(),
});

const rootRecord: z.ZodType<RootRecord> = z.strictObject({
  id: z.string(),
  name: z.string(),
  serialNumber: z.number(),
  signingKeyId: z.string(),
  certPem: z.string(),
  notBefore: z.string(),
  notAfter: z.string(),
  active: z.boolean(),
  createIndex: z.number().optional(),
});

const rotationRecord: z.ZodType<RotationRecord> = z.strictObject({
  phase: z.enum(['trust-both', 'reissue']),
  oldRootId: z.string(),
  newRootId: z.string(),
  since: z.number(),
});

/** A record that fails its schema fails opening the CA: it must not guess at its own roots. */
export const storedCluster = new SingleRecord(
  { what: 'CA cluster record', version: 1, schema: clusterRecord },
  'ca/cluster',
);

/** `ca/roots/<root id>` */
export const storedRoots = new RecordCollection(
  { what: 'CA root', version: 1, schema: rootRecord },
  'ca/roots/',
);

export const storedRotation = new SingleRecord(
  { what: 'CA rotation record', version: 1, schema: rotationRecord },
  'ca/rotation',
);
