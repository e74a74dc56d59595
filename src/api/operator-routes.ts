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

/** One server of one datacenter, as `GET /v1/operator/servers?wan` lists it. */
export interface WanServerJson {
  readonly Name: string;
  /** Its federation address (host:port), as its own datacenter's gateways dial it. */
  readonly Address: string;
  readonly Datacenter: string;
  /** `alive`, or `failed` while its datacenter's link is down or not known (§6c). */
  readonly Status: 'alive' | 'failed';
  /** Since when the status holds (RFC 3339). */
  readonly StatusSince: string;
  /** It holds its datacenter's leader key. */
  readonly Leader: boolean;
  /** Its datacenter is the primary. */
  readonly Primary: boolean;
  /** It is the server that answered. */
  readonly Self: boolean;
}

/**
 * `GET /v1/operator/servers`: every live server of the cluster, sorted by name (Consul's
 * `/v1/operator/raft/configuration` answers the same question). A server that died leaves the list
 * within its lease TTL; with `--store lmdb` the list is this server alone. With `?wan` (Consul's
 * boolean flag: present unless `false`/`0`), every server of every WAN-federated datacenter
 * (`consul members -wan`), sorted by datacenter and name.
 */
export function registerOperatorRoutes(
  app: FastifyInstance,
  source: ServersSource,
  wan: () => readonly WanServerJson[],
): void {
  app.get<{ Querystring: { wan?: string } }>(
    '/v1/operator/servers',
    withAccess(readers),
    async (req) => (isSet(req.query.wan) ? wan() : source.servers()),
  );
}

function isSet(value: string | undefined): boolean {
  return value !== undefined && value !== 'false' && value !== '0';
}
