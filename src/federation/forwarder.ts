import * as grpc from '@grpc/grpc-js';
import type { CertificateAuthority } from '../ca/index.js';
import type { CatalogReader } from '../catalog/types.js';
import { IsthmusError } from '../errors.js';
import type { ForwardResponse } from '../gen/isthmus/federation/v1/federation.js';
import { federationServerName } from '../mesh/names.js';
import { primaryDialAddresses } from './local-state.js';
import { federationIdentity } from './server.js';
import type { FederationStates } from './states.js';
import { dialFederation } from './tls.js';

export interface ForwarderOptions {
  readonly datacenter: string;
  readonly primary: string;
  readonly nodeName: string;
  /** `--primary-gateways` (first contact with the primary). */
  readonly primaryGateways: readonly string[];
  readonly catalog: CatalogReader;
  readonly states: Pick<FederationStates, 'get'>;
  readonly ca: Pick<CertificateAuthority, 'trustDomain' | 'roots' | 'leaf'>;
}

/** One HTTP request for another datacenter's servers. */
export interface ForwardCall {
  readonly method: string;
  /** Path and query string, without `dc`. */
  readonly path: string;
  readonly body: Buffer;
  readonly timeoutMs: number;
}

/**
 * Where this server dials datacenter `target`'s servers (docs/architecture.md §6c), every address
 * a mesh gateway's: our own exposing gateways (LAN side; they route `server.<target>.consul` to
 * the target's gateways), then for the primary `--primary-gateways`, then the target's own
 * exposing gateways (WAN side, from its federation state), which route that name to its servers.
 */
export function forwardDialAddresses(opts: ForwarderOptions, target: string): string[] {
  const { catalog, datacenter, primary, primaryGateways, states } = opts;
  const viaUs = primaryDialAddresses(
    catalog,
    datacenter,
    target === primary ? primaryGateways : [],
  );
  const theirs = (states.get(target)?.meshGateways ?? []).map((g) => `${g.address}:${g.port}`);
  return [...new Set([...viaUs, ...theirs])];
}

/**
 * Forwards requests to other datacenters' servers over the federation link (`Forward`, mutual TLS
 * with our federation server leaf, the answer's certificate must name `server.<target>.consul`).
 * Each address is tried in turn while the connection itself fails (UNAVAILABLE); a client per
 * request, closed after it: forwarded requests are rare next to the replication stream.
 */
export class FederationForwarder {
  constructor(private readonly opts: ForwarderOptions) {}

  async forward(target: string, call: ForwardCall): Promise<ForwardResponse> {
    const { ca, datacenter, nodeName } = this.opts;
    const addresses = forwardDialAddresses(this.opts, target);
    if (addresses.length === 0)
      throw new IsthmusError(
        'unavailable',
        `datacenter ${target} is unreachable: no mesh gateway leads there (register a gateway with --expose-servers in ${datacenter}, or wait for ${target}'s federation state)`,
      );
    const leaf = await ca.leaf(federationIdentity(ca, datacenter, nodeName));
    const failures: string[] = [];
    for (const address of addresses) {
      const client = dialFederation({
        address,
        serverName: federationServerName(target),
        trust: { rootPems: ca.roots().roots.map((r) => r.certPem) },
        leaf,
      });
      try {
        return await new Promise<ForwardResponse>((resolve, reject) =>
          client.forward(
            { datacenter: target, method: call.method, path: call.path, body: call.body },
            new grpc.Metadata(),
            { deadline: Date.now() + call.timeoutMs },
            (err, res) => (err ? reject(err) : resolve(res)),
          ),
        );
      } catch (err) {
        const e = err as grpc.ServiceError;
        if (e.code !== grpc.status.UNAVAILABLE) throw refusal(target, e);
        failures.push(`${address}: ${e.details || e.message}`);
      } finally {
        client.close();
      }
    }
    throw new IsthmusError(
      'unavailable',
      `datacenter ${target} is unreachable through the mesh gateways (${failures.join('; ')})`,
    );
  }
}

/** The target's servers answered with an error rather than an HTTP answer. */
function refusal(target: string, e: grpc.ServiceError): IsthmusError {
  const why = `datacenter ${target} refused the forwarded request: ${e.details || e.message}`;
  switch (e.code) {
    case grpc.status.DEADLINE_EXCEEDED:
      return new IsthmusError('unavailable', `datacenter ${target} did not answer in time`);
    case grpc.status.PERMISSION_DENIED:
    case grpc.status.UNAUTHENTICATED:
      return new IsthmusError('permission_denied', why);
    case grpc.status.FAILED_PRECONDITION:
      return new IsthmusError('failed_precondition', why);
    case grpc.status.INVALID_ARGUMENT:
      return new IsthmusError('invalid_argument', why);
    default:
      return new IsthmusError('internal', why);
  }
}
