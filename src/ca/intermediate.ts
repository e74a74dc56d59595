// @peculiar/x509 uses decorators that need the reflect-metadata polyfill loaded first.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createHash, webcrypto } from 'node:crypto';
import { IsthmusError } from '../errors.js';
import {
  backdateMs,
  colonHex,
  ecdsa,
  pkcs8Pem,
  randomSerialHex,
  type Signer,
  validity,
} from './x509.js';

/**
 * Intermediate CAs for WAN federation (docs/architecture.md §6c), as Consul's secondary datacenters
 * get theirs (`agent/consul/leader_connect_ca.go`): the secondary makes a key pair and a PKCS#10
 * request, only the request crosses the federation link, and the primary's active root signs a CA
 * certificate for it (path length 0: it signs leaves only). The key never leaves the secondary.
 */

export interface IntermediateRequest {
  readonly csrPem: string;
  /** PKCS#8 PEM; stays on the secondary, never logged. */
  readonly keyPem: string;
}

/** An intermediate's lifetime: a year, as Consul's default `IntermediateCertTTL`. */
export const intermediateValidityMs = 365 * 24 * 3600_000;

/** A new key pair and a request naming the datacenter (CN); the primary sets the trust domain. */
export async function createIntermediateRequest(opts: {
  readonly datacenter: string;
}): Promise<IntermediateRequest> {
  const keys = (await webcrypto.subtle.generateKey(ecdsa, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: [{ CN: [`isthmus intermediate CA ${opts.datacenter}`] }],
    keys,
    signingAlgorithm: ecdsa,
  });
  return { csrPem: csr.toString('pem'), keyPem: await pkcs8Pem(keys.privateKey) };
}

/**
 * The primary signs a secondary's request: CA:true with path length 0, keyCertSign + cRLSign, URI
 * SAN `spiffe://<td>` (whatever the request asked for), AKI = the signing root's SKI. A request
 * whose signature does not verify is refused: whoever made it does not hold the key.
 */
export async function signIntermediate(
  signer: Signer,
  csrPem: string,
  opts: { readonly trustDomainUri: string; readonly datacenter: string; readonly now: number },
): Promise<string> {
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(csrPem);
  } catch {
    throw new IsthmusError('invalid_argument', 'csr_pem: not a PKCS#10 certificate request');
  }
  if (!(await csr.verify()))
    throw new IsthmusError('invalid_argument', 'csr_pem: the request signature does not verify');
  const publicKey = await csr.publicKey.export(ecdsa, ['verify']);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerialHex(16),
    subject: [{ CN: [`isthmus intermediate CA ${opts.datacenter}`] }],
    issuer: signer.cert.subject,
    notBefore: new Date(opts.now - backdateMs),
    notAfter: new Date(opts.now + intermediateValidityMs),
    publicKey,
    signingKey: signer.key,
    signingAlgorithm: ecdsa,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
        true,
      ),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: opts.trustDomainUri }]),
      await x509.SubjectKeyIdentifierExtension.create(publicKey),
      new x509.AuthorityKeyIdentifierExtension(
        signer.cert.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId,
      ),
    ],
  });
  return cert.toString('pem');
}

/** A certificate's ID as the CA names roots: SHA-1 of the DER, colon-hex. */
export function certificateId(certPem: string): string {
  const der = x509.PemConverter.decodeFirst(certPem);
  return colonHex(createHash('sha1').update(Buffer.from(der)).digest());
}

export { validity };
