import { z } from 'zod';
import { serviceInstanceShape } from '../catalog/records.js';
import { RecordCollection } from '../store/records.js';
import type { ImportedInstance } from './imported.js';
import type { PeeringSecrets } from './secrets.js';
import type { Peering, StreamStatus } from './types.js';

/**
 * The peering records in the Store: `peering/peerings/<name>` (what the API shows),
 * `peering/secrets/<peering id>` (never shown) and `peering/imported/<peer>/<service>` (the
 * instances a peer replicated).
 */

const streamStatus: z.ZodType<StreamStatus> = z.strictObject({
  ImportedServices: z.array(z.string()),
  ExportedServices: z.array(z.string()),
  LastHeartbeat: z.string().optional(),
  LastReceive: z.string().optional(),
  LastSend: z.string().optional(),
  LastError: z.string().optional(),
  LastNack: z.string().optional(),
});

const peering: z.ZodType<Peering> = z.strictObject({
  ID: z.string(),
  Name: z.string(),
  State: z.enum(['PENDING', 'ESTABLISHING', 'ACTIVE', 'FAILING', 'DELETING', 'TERMINATED']),
  PeerID: z.string(),
  PeerServerName: z.string(),
  PeerServerAddresses: z.array(z.string()),
  PeerCAPems: z.array(z.string()),
  PeerTrustDomain: z.string(),
  ManualServerAddresses: z.boolean().optional(),
  Meta: z.record(z.string(), z.string()),
  Remote: z.strictObject({ Partition: z.string(), Datacenter: z.string() }),
  StreamStatus: streamStatus,
  CreateIndex: z.number(),
  ModifyIndex: z.number(),
  DeletedAt: z.string().optional(),
});

const peeringSecrets: z.ZodType<PeeringSecrets> = z.discriminatedUnion('role', [
  z.strictObject({
    role: z.literal('acceptor'),
    establishmentSha256: z.string().optional(),
    activeStreamSha256: z.string().optional(),
    pendingStreamSha256: z.string().optional(),
  }),
  z.strictObject({ role: z.literal('dialer'), streamSecret: z.string() }),
]);

/** One imported service: its instances (version 1 stored the bare array). */
export interface ImportedRecord {
  readonly instances: readonly ImportedInstance[];
}

const importedInstance: z.ZodType<ImportedInstance> = z.strictObject({
  ...serviceInstanceShape,
  peerName: z.string(),
  peerMeta: z
    .strictObject({
      sni: z.array(z.string()),
      spiffeId: z.array(z.string()),
      protocol: z.string(),
    })
    .optional(),
});

const importedRecord: z.ZodType<ImportedRecord> = z.strictObject({
  instances: z.array(importedInstance),
});

/** A record that fails its schema fails opening the peerings (the API would lose a peering). */
export const storedPeerings = new RecordCollection(
  { what: 'peering', version: 1, schema: peering },
  'peering/peerings/',
);

/** Read when a stream opens; a corrupt one refuses that stream with the error naming key and field. */
export const storedSecrets = new RecordCollection(
  { what: 'peering secrets record', version: 1, schema: peeringSecrets },
  'peering/secrets/',
);

/** `<peer>/<service>`. Invalid ones are reported and skipped: the peer replicates them again. */
export const storedImports = new RecordCollection(
  {
    what: 'imported service',
    version: 2,
    schema: importedRecord,
    upgrade: (record) => (Array.isArray(record) ? { instances: record } : record),
  },
  'peering/imported/',
);
