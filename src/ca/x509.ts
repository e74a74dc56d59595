// @peculiar/x509 uses decorators that need the reflect-metadata polyfill loaded first.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import {
  type KeyObject,
  X509Certificate,
  createHash,
  generateKeyPair,
  randomBytes,
  webcrypto,
} from 'node:crypto';
import { promisify } from 'node:util';

/**
 * Certificate building for the built-in CA: ECDSA P-256 keys on Node's WebCrypto, SHA-256
 * signatures, SPIFFE URI SANs. Pure apart from randomness (keys, serial numbers); dates are inputs.
 */

x509.cryptoProvider.set(webcrypto);

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

export const ecdsa = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
/** Certificates are backdated so a peer whose clock is slightly behind accepts them at once. */
export const backdateMs = 60_000;

export interface RootMaterial {
  /** SHA-1 fingerprint of the DER, lowercase colon-hex (the form of Consul's root IDs). */
  readonly id: string;
  readonly name: string;
  readonly serialNumber: number;
  /** Subject key identifier, lowercase colon-hex. */
  readonly signingKeyId: string;
  readonly certPem: string;
  /** PKCS#8 PEM. Never logged. */
  readonly keyPem: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

export interface IssuedLeaf {
  readonly certPem: string;
  readonly keyPem: string;
  readonly serial: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/** What signs leaves: the active root's certificate and private key. */
export interface Signer {
  readonly rootId: string;
  readonly cert: x509.X509Certificate;
  readonly key: CryptoKey;
}

export interface LeafRequest {
  readonly spiffeId: string;
  readonly dnsSans?: readonly string[] | undefined;
  readonly now: number;
  readonly ttlMs: number;
}

export const colonHex = (bytes: Uint8Array | Buffer): string =>
  Buffer.from(bytes).toString('hex').match(/../g)!.join(':');

async function generateKeys(): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(ecdsa, true, ['sign', 'verify'])) as CryptoKeyPair;
}

const generateEcKeyPair = promisify(generateKeyPair);

/**
 * A leaf's key pair, from Node's own generator: it runs on libuv's thread pool, and its KeyObjects
 * export synchronously, where WebCrypto's generateKey + exportKey + digest take three more trips
 * (bench/leaf-issuance; a leaf per proxy instance, issue 18).
 */
async function leafKeys(): Promise<{ spki: Buffer; keyPem: string; keyId: string }> {
  const { publicKey, privateKey } = await generateEcKeyPair('ec', { namedCurve: 'P-256' });
  return {
    spki: publicKey.export({ type: 'spki', format: 'der' }),
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    keyId: subjectKeyId(publicKey),
  };
}

/**
 * RFC 5280 §4.2.1.2 method 1, as @peculiar/x509 computes it for the root: SHA-1 of the
 * subjectPublicKey bits, for P-256 the uncompressed point 04 || x || y.
 */
function subjectKeyId(publicKey: KeyObject): string {
  const jwk = publicKey.export({ format: 'jwk' });
  const point = Buffer.concat([
    Buffer.from([4]),
    Buffer.from(jwk.x ?? '', 'base64url'),
    Buffer.from(jwk.y ?? '', 'base64url'),
  ]);
  return createHash('sha1').update(point).digest('hex');
}

/** X.509 times have whole seconds: what a date becomes once encoded. */
const encodedTime = (ms: number) => new Date(Math.floor(ms / 1000) * 1000);

export async function pkcs8Pem(key: CryptoKey): Promise<string> {
  return x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
}

/**
 * A positive serial of `bytes` random bytes, as hex (the top bit cleared so DER keeps it positive).
 */
export function randomSerialHex(bytes: number): string {
  const b = randomBytes(bytes);
  b[0] = (b[0]! & 0x7f) | 0x01;
  return b.toString('hex');
}

/**
 * A self-signed CA root: CA:true (critical), keyCertSign + cRLSign, URI SAN `rootUri`
 * (`spiffe://<td>`), valid for `validityMs` from `now` (backdated a minute).
 */
export async function createRoot(opts: {
  rootUri: string;
  name: string;
  now: number;
  validityMs: number;
}): Promise<RootMaterial> {
  const keys = await generateKeys();
  // 6 random bytes: Consul's SerialNumber is a JSON number, and this stays a safe integer.
  const serialHex = randomSerialHex(6);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialHex,
    name: [{ CN: [opts.name] }],
    notBefore: new Date(opts.now - backdateMs),
    notAfter: new Date(opts.now + opts.validityMs),
    keys,
    signingAlgorithm: ecdsa,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
        true,
      ),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: opts.rootUri }]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const certPem = cert.toString('pem');
  const ski = cert.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId;
  return {
    id: colonHex(createHash('sha1').update(Buffer.from(cert.rawData)).digest()),
    name: opts.name,
    serialNumber: parseInt(serialHex, 16),
    signingKeyId: colonHex(Buffer.from(ski, 'hex')),
    certPem,
    keyPem: await pkcs8Pem(keys.privateKey),
    ...validity(certPem),
  };
}

/** Loads a root's certificate and PKCS#8 key as a leaf signer. */
export async function loadSigner(rootId: string, certPem: string, keyPem: string): Promise<Signer> {
  const der = x509.PemConverter.decodeFirst(keyPem);
  const key = await webcrypto.subtle.importKey('pkcs8', der, ecdsa, false, ['sign']);
  return { rootId, cert: new x509.X509Certificate(certPem), key };
}

/**
 * A leaf for a workload identity: CA:false, digitalSignature + keyAgreement (what TLS needs from an
 * ECDSA key; Consul adds RSA-only bits that mean nothing for EC), serverAuth + clientAuth (every
 * sidecar is both), URI SAN = the SPIFFE ID plus optional DNS SANs, AKI = the root's SKI.
 */
export async function issueLeaf(signer: Signer, req: LeafRequest): Promise<IssuedLeaf> {
  const keys = await leafKeys();
  const notBefore = encodedTime(req.now - backdateMs);
  const notAfter = encodedTime(req.now + req.ttlMs);
  const serialHex = randomSerialHex(16);
  const names: x509.JsonGeneralName[] = [
    { type: 'url', value: req.spiffeId },
    ...(req.dnsSans ?? []).map((value) => ({ type: 'dns' as const, value })),
  ];
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serialHex,
    subject: [{ CN: [commonNameOf(req)] }],
    issuer: signer.cert.subject,
    notBefore,
    notAfter,
    publicKey: keys.spki,
    signingKey: signer.key,
    signingAlgorithm: ecdsa,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement,
        true,
      ),
      new x509.ExtendedKeyUsageExtension([
        x509.ExtendedKeyUsage.serverAuth,
        x509.ExtendedKeyUsage.clientAuth,
      ]),
      new x509.SubjectAlternativeNameExtension(names),
      new x509.SubjectKeyIdentifierExtension(keys.keyId),
      new x509.AuthorityKeyIdentifierExtension(
        signer.cert.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId,
      ),
    ],
  });
  return {
    certPem: cert.toString('pem'),
    keyPem: keys.keyPem,
    serial: colonHex(Buffer.from(serialHex, 'hex')),
    notBefore,
    notAfter,
  };
}

/**
 * The CN is informational (peers match URI SANs): the service or gateway name, or the first DNS
 * SAN.
 */
function commonNameOf(req: LeafRequest): string {
  const dns = req.dnsSans?.[0];
  if (dns) return dns;
  return req.spiffeId.split('/').filter(Boolean).pop() ?? req.spiffeId;
}

/** Validity as encoded (X.509 times have whole seconds). */
export function validity(certPem: string): { notBefore: Date; notAfter: Date } {
  const cert = new X509Certificate(certPem);
  return { notBefore: new Date(cert.validFrom), notAfter: new Date(cert.validTo) };
}
