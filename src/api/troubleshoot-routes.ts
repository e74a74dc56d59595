import type { FastifyInstance } from 'fastify';
import type { Catalog } from '../catalog/catalog.js';
import type { CertificateAuthority } from '../ca/index.js';
import type { ImportedServices } from '../peering/imported.js';
import type { Peerings } from '../peering/peerings.js';
import type { XdsServer } from '../xds/server.js';

/** What the troubleshoot checklists read: live server state, never secrets. */
export interface TroubleshootDeps {
  readonly datacenter: string;
  readonly catalog: Catalog;
  readonly ca: CertificateAuthority;
  readonly peerings: Peerings;
  readonly imported: ImportedServices;
  readonly xds: XdsServer;
  /** A peering with no heartbeat for this long is unhealthy (--peering-heartbeat-timeout-ms). */
  readonly heartbeatTimeoutMs: number;
  readonly now?: () => number;
}

/** `GET /v1/troubleshoot/peering/:name` and `GET /v1/troubleshoot/proxy/:id` (placeholder). */
export function registerTroubleshootRoutes(_app: FastifyInstance, _deps: TroubleshootDeps): void {}
