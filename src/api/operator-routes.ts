import type { FastifyInstance } from 'fastify';
import { readers, withAccess } from './route-access.js';

/** One server of this cluster, as `GET /v1/operator/servers` lists it. */
export interface ServerJson {
  readonly Name: string;
  /** Its HTTP API, xDS and peering addresses (host:port). */
  readonly HTTPAddr: string;
  readonly XdsAddr: string;
  readonly PeeringAddr: string;
  /** When it started (RFC 3339). */
  readonly StartedAt: string;
  readonly Version: string;
  /** It holds the leader key: it runs the peering streams and CA rotation. */
  readonly Leader: boolean;
  /** It is the server that answered. */
  readonly Self: boolean;
}

/** The live servers of this cluster (docs/architecture.md §1 "Membership"). */
export interface ServersSource {
  servers(): readonly ServerJson[];
}

/**
 * `GET /v1/operator/servers`: every live server of the cluster, sorted by name (Consul's
 * `/v1/operator/raft/configuration` answers the same question). A server that died leaves the list
 * within its lease TTL; with `--store lmdb` the list is this server alone.
 */
export function registerOperatorRoutes(app: FastifyInstance, source: ServersSource): void {
  app.get('/v1/operator/servers', withAccess(readers), async () => source.servers());
}
