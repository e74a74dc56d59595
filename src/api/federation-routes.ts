import type { FastifyInstance } from 'fastify';
import { anyone, readers, withAccess } from './route-access.js';

export interface FederationRoutesSource {
  readonly datacenter: string;
  /** Every datacenter known: this one and each with a federation state, sorted. */
  datacenters(): readonly string[];
  states(): readonly {
    readonly datacenter: string;
    readonly meshGateways: readonly { readonly address: string; readonly port: number }[];
    readonly updatedAt: number;
  }[];
  /** A secondary's link to the primary; undefined on the primary or without federation. */
  replication():
    | {
        readonly connected: boolean;
        readonly via: string | undefined;
        readonly lastError: string | undefined;
        readonly appliedIndex: number;
      }
    | undefined;
}

/**
 * WAN federation reads (docs/architecture.md §6c): `GET /v1/catalog/datacenters` (Consul's shape, a
 * JSON array of names; public as in Consul) and `GET /v1/internal/federation-states` (Consul's
 * path: each datacenter's exposing gateways, and on a secondary the state of its link).
 */
export function registerFederationRoutes(app: FastifyInstance, src: FederationRoutesSource): void {
  app.get('/v1/catalog/datacenters', withAccess(anyone), async () => src.datacenters());
  app.get('/v1/internal/federation-states', withAccess(readers), async () => {
    const link = src.replication();
    return {
      Datacenter: src.datacenter,
      States: src.states().map((s) => ({
        Datacenter: s.datacenter,
        MeshGateways: s.meshGateways.map((g) => ({ Address: g.address, Port: g.port })),
        UpdatedAt: new Date(s.updatedAt).toISOString(),
      })),
      ...(link
        ? {
            PrimaryLink: {
              Connected: link.connected,
              Via: link.via ?? '',
              LastError: link.lastError ?? '',
              AppliedIndex: link.appliedIndex,
            },
          }
        : {}),
    };
  });
}
