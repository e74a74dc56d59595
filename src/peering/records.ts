import { z } from 'zod';
import { serviceInstanceShape } from '../catalog/records.js';
import { RecordCollection } from '../store/records.js';
import type { ImportedInstance } from './imported.js';
import type { PeeringSecrets } from './secrets.js';
import type { Peering, StreamStatus } from './types.js';

/**
 * The peering records in the Store: `peering/peerings/<name>` (what the API shows, in camelCase:
 * the API converts to Consul's PascalCase at its boundary, src/api/peering-routes.ts),
 * `peering/secrets/<peering id>` (never shown) and `peering/imported/<peer>/<service>` (the
 * instances a peer replicated).
 */

const peeringState = z.enum([
  'PENDING',
  'ESTABLISHING',
  'ACTIVE',
  'FAILING',
  'DELETING',
  'TERMINATED',
]);

const streamStatus: z.ZodType<StreamStatus> = z.strictObject({
  importedServices: z.array(z.string()),
  exportedServices: z.array(z.string()),
  lastHeartbeat: z.string().optional(),
  lastReceive: z.string().optional(),
  lastSend: z.string().optional(),
  lastError: z.string().optional(),
  lastNack: z.string().optional(),
  rejectedImports: z
    .array(
      z.strictObject({
        resource: z.enum(['trust-bundle', 'server-addresses', 'exported-services', 'service']),
        resourceId: z.string(),
        reason: z.string(),
      }),
    )
    .optional(),
});

const peering: z.ZodType<Peering> = z.strictObject({
  id: z.string(),
  name: z.string(),
  state: peeringState,
  peerId: z.string(),
  peerServerName: z.string(),
  peerServerAddresses: z.array(z.string()),
  peerCaPems: z.array(z.string()),
  peerTrustDomain: z.string(),
  manualServerAddresses: z.boolean().optional(),
  meta: z.record(z.string(), z.string()),
  remote: z.strictObject({ partition: z.string(), datacenter: z.string() }),
  streamStatus,
  createIndex: z.number(),
  modifyIndex: z.number(),
  deletedAt: z.string().optional(),
});

/**
 * Version 1 of a peering record (every one written before versions existed): the API's
 * PascalCase field names. Read into the current shape; the next write stores version 2.
 */
const peeringV1: z.ZodType<Peering> = z
  .strictObject({
    ID: z.string(),
    Name: z.string(),
    State: peeringState,
    PeerID: z.string(),
    PeerServerName: z.string(),
    PeerServerAddresses: z.array(z.string()),
    PeerCAPems: z.array(z.string()),
    PeerTrustDomain: z.string(),
    ManualServerAddresses: z.boolean().optional(),
    Meta: z.record(z.string(), z.string()),
    Remote: z.strictObject({ Partition: z.string(), Datacenter: z.string() }),
    StreamStatus: z.strictObject({
      ImportedServices: z.array(z.string()),
      ExportedServices: z.array(z.string()),
      LastHeartbeat: z.string().optional(),
      LastReceive: z.string().optional(),
      LastSend: z.string().optional(),
      LastError: z.string().optional(),
      LastNack: z.string().optional(),
    }),
    CreateIndex: z.number(),
    ModifyIndex: z.number(),
    DeletedAt: z.string().optional(),
  })
  .transform((p) => ({
    id: p.ID,
    name: p.Name,
    state: p.State,
    peerId: p.PeerID,
    peerServerName: p.PeerServerName,
    peerServerAddresses: p.PeerServerAddresses,
    peerCaPems: p.PeerCAPems,
    peerTrustDomain: p.PeerTrustDomain,
    manualServerAddresses: p.ManualServerAddresses,
    meta: p.Meta,
    remote: { partition: p.Remote.Partition, datacenter: p.Remote.Datacenter },
    streamStatus: {
      importedServices: p.StreamStatus.ImportedServices,
      exportedServices: p.StreamStatus.ExportedServices,
      lastHeartbeat: p.StreamStatus.LastHeartbeat,
      lastReceive: p.StreamStatus.LastReceive,
      lastSend: p.StreamStatus.LastSend,
      lastError: p.StreamStatus.LastError,
      lastNack: p.StreamStatus.LastNack,
    },
    createIndex: p.CreateIndex,
    modifyIndex: p.ModifyIndex,
    deletedAt: p.DeletedAt,
  }));

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
  {
    what: 'peering',
    version: 2,
    schema: peering,
    upgrade: (record) => peeringV1.parse(record),
  },
  'peering/peerings/',
);

/**
 * Read when a stream opens; a corrupt one refuses that stream with the error naming key and field.
 */
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
