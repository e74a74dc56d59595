import * as grpc from '@grpc/grpc-js';
import type { CertificateAuthority } from '../ca/index.js';
import { IsthmusError } from '../errors.js';
import type { ExchangeSecretResponse } from '../gen/isthmus/peering/v1/peering.js';
import type { Logger } from '../log.js';
import { peeringServerName } from '../mesh/names.js';
import { describeError } from '../problems.js';
import { rootsCertify, trustDomainFix, trustDomainProblems } from './claims.js';
import { dialPeer } from './dial.js';
import { withLocalGatewaysFirst } from './through-gateways.js';
import type { Peerings } from './peerings.js';
import { peeringIdentity } from './server.js';
import { type PeeringToken, dialAddressesOf, parseToken } from './token.js';
import type { Peering } from './types.js';

export interface EstablishDeps {
  readonly peerings: Peerings;
  readonly ca: CertificateAuthority;
  readonly datacenter: string;
  readonly logger: Logger;
  /** Per acceptor address (default 10 s). */
  readonly exchangeTimeoutMs?: number;
  /**
   * Our mesh gateways' LAN addresses when peering through them (tried first, SNI = the token's
   * ServerName).
   */
  readonly localGatewayAddresses?: () => readonly string[];
}

export interface EstablishInput {
  readonly PeerName: string;
  readonly PeeringToken: string;
  readonly Meta?: Readonly<Record<string, string>> | undefined;
}

/**
 * Dialer side of establishing (`POST /v1/peering/establish`): parse the token (invalid_argument
 * naming the problem), dial its addresses in order over TLS that trusts only the token's CA and
 * requires its ServerName, trade the establishment secret for a stream secret (handing over our
 * roots for the acceptor to pin), then store the peering as ESTABLISHING.
 */
export async function establishPeering(
  deps: EstablishDeps,
  input: EstablishInput,
): Promise<Peering> {
  const token = tokenFor(deps, input.PeeringToken);
  deps.peerings.checkCanEstablish(input.PeerName, token);
  checkClaims(deps, input.PeerName, token);
  const leaf = await deps.ca.leaf(peeringIdentity(deps.ca, deps.datacenter));
  const response = await exchangeWithAny(deps, token, leaf);
  return deps.peerings.recordEstablished({
    name: input.PeerName,
    token,
    streamSecret: response.streamSecret,
    meta: input.Meta,
  });
}

function tokenFor(deps: EstablishDeps, text: string): PeeringToken {
  const parsed = parseToken(text);
  if (!parsed.ok) throw new IsthmusError('invalid_argument', parsed.error, 'PeeringToken');
  const own = peeringServerName(deps.ca.trustDomain, deps.datacenter);
  if (parsed.value.ServerName === own) {
    throw new IsthmusError(
      'invalid_argument',
      `invalid peering token: ServerName ${own} is this cluster's own: establish with it on the other cluster`,
      'PeeringToken',
    );
  }
  return parsed.value;
}

/**
 * The acceptor claims the trust domain of its ServerName (`server.<dc>.peering.<td>`): the token's
 * roots must certify exactly it, and it must be neither ours nor another live peer's
 * (docs/architecture.md §6 "Claims"). Checked before the establishment secret is spent.
 */
function checkClaims(deps: EstablishDeps, name: string, token: PeeringToken): void {
  const td = /^server\.[^.]+\.peering\.(.+)$/.exec(token.ServerName)?.[1] ?? '';
  const problems = [
    ...trustDomainProblems(
      td,
      'PeeringToken.ServerName',
      {
        ownTrustDomain: deps.ca.trustDomain,
        peerings: deps.peerings.list(),
        peeringName: name,
      },
      token.CA,
    ),
    ...(td ? rootsCertify(td, token.CA, 'PeeringToken.CA') : []),
  ];
  if (problems.length === 0) return;
  throw new IsthmusError(
    'invalid_argument',
    `invalid peering token: ${problems.map(describeError).join('; ')} (${trustDomainFix})`,
    'PeeringToken',
  );
}

/**
 * Tries each address until one answers. The acceptor's verdicts (permission denied, invalid
 * argument) are final; transport failures (unreachable, TLS refused) move on to the next address.
 */
async function exchangeWithAny(
  deps: EstablishDeps,
  token: PeeringToken,
  leaf: { certPem: string; keyPem: string },
): Promise<ExchangeSecretResponse> {
  const failures: string[] = [];
  for (const address of withLocalGatewaysFirst(
    deps.localGatewayAddresses?.() ?? [],
    dialAddressesOf(token),
  )) {
    try {
      return await exchangeAt(deps, token, leaf, address);
    } catch (err) {
      const e = err as Partial<grpc.ServiceError>;
      if (e.code === grpc.status.PERMISSION_DENIED)
        throw new IsthmusError('permission_denied', `the peer refused the token: ${e.details}`);
      if (e.code === grpc.status.INVALID_ARGUMENT)
        throw new IsthmusError(
          'invalid_argument',
          `the peer refused the secret exchange: ${e.details}`,
        );
      failures.push(
        `${address}: ${e.details ?? (err instanceof Error ? err.message : String(err))}`,
      );
      deps.logger.warn(
        { address, peerId: token.PeerID, code: e.code },
        'peering secret exchange failed at this address',
      );
    }
  }
  const certificateProblem = failures.some((f) =>
    /certificate|self.signed|unable to verify/i.test(f),
  );
  const hint = certificateProblem
    ? " (the peer server's certificate does not chain to the CA in the token: if the peer rotated its CA after generating the token, generate a new token there)"
    : ' (check that the peer server is running and its peering address is reachable from here)';
  throw new IsthmusError(
    'unavailable',
    `cannot exchange the peering secret with ${token.ServerName}: ${failures.join('; ')}${hint}`,
  );
}

function exchangeAt(
  deps: EstablishDeps,
  token: PeeringToken,
  leaf: { certPem: string; keyPem: string },
  address: string,
): Promise<ExchangeSecretResponse> {
  const client = dialPeer({ address, caPems: token.CA, serverName: token.ServerName, leaf });
  const deadline = Date.now() + (deps.exchangeTimeoutMs ?? 10_000);
  const request = {
    peerId: token.PeerID,
    establishmentSecret: token.EstablishmentSecret,
    dialerRootPems: deps.ca.roots().roots.map((r) => r.certPem),
    dialerTrustDomain: deps.ca.trustDomain,
    dialer: { partition: 'default', datacenter: deps.datacenter },
  };
  return new Promise<ExchangeSecretResponse>((resolve, reject) => {
    client.exchangeSecret(request, new grpc.Metadata(), { deadline }, (err, res) => {
      if (err) reject(err);
      else resolve(res);
    });
  }).finally(() => client.close());
}
