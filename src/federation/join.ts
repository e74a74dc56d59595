import { X509Certificate, createPublicKey, randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { type JoinedCa, createIntermediateRequest } from '../ca/index.js';
import { IsthmusError } from '../errors.js';
import type { JoinResponse } from '../gen/isthmus/federation/v1/federation.js';
import type { Logger } from '../log.js';
import { federationServerName } from '../mesh/names.js';
import { joinRequestMac, joinResponseMac, macMatches } from './secret.js';
import { dialFederation } from './tls.js';

export interface JoinOptions {
  readonly datacenter: string;
  readonly primary: string;
  /** Gateways to dial, in order (`primaryDialAddresses`); retried until one answers. */
  readonly addresses: () => readonly string[];
  readonly secret: Buffer;
  readonly logger: Logger;
  /** Stops retrying (the server is stopping). */
  readonly signal?: AbortSignal | undefined;
}

const attemptMs = 10_000;
const retryCapMs = 5_000;

/**
 * A secondary's first contact (docs/architecture.md §6c): a key pair and a request for an
 * intermediate CA, sent to the primary through a gateway with SNI `server.<primary>.consul`. The
 * answer is trusted only when its MAC proves the primary holds the federation secret and it
 * certifies our own key under one of the roots it names. Retries each gateway in turn, with
 * backoff, until the primary answers or the signal aborts.
 */
export async function joinPrimary(opts: JoinOptions): Promise<JoinedCa> {
  const request = await createIntermediateRequest({ datacenter: opts.datacenter });
  let delayMs = 250;
  for (;;) {
    for (const address of opts.addresses()) {
      opts.signal?.throwIfAborted();
      try {
        const joined = await joinOnce(address, request, opts);
        opts.logger.info(
          { primary: opts.primary, via: address, trustDomain: joined.trustDomain },
          'joined the primary datacenter: intermediate CA signed',
        );
        return joined;
      } catch (err) {
        if (err instanceof IsthmusError && err.code === 'permission_denied') throw err;
        opts.logger.warn(
          { primary: opts.primary, via: address, err: (err as Error).message },
          'cannot join the primary datacenter yet; retrying',
        );
      }
    }
    await new Promise((resolve) => setTimeout(resolve, delayMs));
    delayMs = Math.min(retryCapMs, Math.round(delayMs * 1.5));
  }
}

async function joinOnce(
  address: string,
  request: { csrPem: string; keyPem: string },
  opts: JoinOptions,
): Promise<JoinedCa> {
  const nonce = randomBytes(32).toString('base64');
  const fields = { datacenter: opts.datacenter, csrPem: request.csrPem, nonce };
  const client = dialFederation({
    address,
    serverName: federationServerName(opts.primary),
    trust: 'unverified',
  });
  try {
    const res = await new Promise<JoinResponse>((resolve, reject) =>
      client.join(
        { ...fields, mac: joinRequestMac(opts.secret, fields) },
        new grpc.Metadata(),
        { deadline: Date.now() + attemptMs },
        (err: grpc.ServiceError | null, value: JoinResponse) =>
          err ? reject(refusal(err, opts.primary)) : resolve(value),
      ),
    );
    return checkedAnswer(res, nonce, request, opts);
  } finally {
    client.close();
  }
}

/** The primary's verdict on our secret ends the join (it will not change by retrying). */
function refusal(err: grpc.ServiceError, primary: string): Error {
  if (err.code !== grpc.status.PERMISSION_DENIED) return err;
  return new IsthmusError(
    'permission_denied',
    `the primary datacenter ${primary} refused to sign our intermediate: ${err.details}`,
  );
}

/** The primary's answer, once it proves the secret and certifies our key under its roots. */
function checkedAnswer(
  res: JoinResponse,
  nonce: string,
  request: { csrPem: string; keyPem: string },
  opts: JoinOptions,
): JoinedCa {
  if (!macMatches(joinResponseMac(opts.secret, nonce, res), res.mac))
    throw new IsthmusError(
      'permission_denied',
      `the answer to our join is not signed with this federation's secret: is --federation-secret-file the primary's (${opts.primary})?`,
    );
  if (res.primaryDatacenter !== opts.primary)
    throw new Error(
      `the server answering is datacenter ${res.primaryDatacenter}, not ${opts.primary}`,
    );
  const intermediate = new X509Certificate(res.intermediatePem);
  const ours = createPublicKey(request.keyPem).export({ type: 'spki', format: 'der' });
  if (!intermediate.publicKey.export({ type: 'spki', format: 'der' }).equals(ours))
    throw new Error('the intermediate certificate is not for our key');
  const roots = res.rootPems.map((pem) => new X509Certificate(pem));
  const signer = roots.find((r) => intermediate.checkIssued(r) && intermediate.verify(r.publicKey));
  if (!signer) throw new Error("the intermediate does not chain to any of the primary's roots");
  return {
    primaryDatacenter: res.primaryDatacenter,
    trustDomain: res.trustDomain,
    intermediatePem: res.intermediatePem,
    keyPem: request.keyPem,
    roots: { activeRootId: fingerprintId(signer), pems: res.rootPems },
  };
}

/** The CA's root ID form: SHA-1 fingerprint, lowercase colon-hex. */
function fingerprintId(cert: X509Certificate): string {
  return cert.fingerprint.toLowerCase();
}
