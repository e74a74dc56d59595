import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { X509Certificate, createPrivateKey, createPublicKey, sign, verify } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  type CaOptions,
  type CaEvent,
  type CertificateAuthority,
  defaultLeafTtlMs,
  openCa,
} from '../../src/ca/index.js';
import { IsthmusError } from '../../src/errors.js';
import { createLogger, silentLogger } from '../../src/log.js';
import { meshGatewaySpiffeId, serviceSpiffeId, trustDomainFor } from '../../src/mesh/names.js';
import { openLmdbStore, type Store } from '../../src/store/index.js';
import { waitFor } from '../helpers/wait.js';

let dir: string;
let store: Store;
const cas: CertificateAuthority[] = [];

beforeEach(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'isthmus-ca-'));
  store = await openLmdbStore(dir);
});

afterEach(async () => {
  await Promise.all(cas.splice(0).map((ca) => ca.close()));
  await store.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function open(opts: Partial<CaOptions> = {}): Promise<CertificateAuthority> {
  const ca = await openCa(store, { dataDir: dir, logger: silentLogger(), ...opts });
  cas.push(ca);
  return ca;
}

const web = (ca: CertificateAuthority) => serviceSpiffeId(ca.trustDomain, 'dc1', { name: 'web' });
const activeRoot = (ca: CertificateAuthority) => new X509Certificate(ca.roots().roots[0]!.certPem);
const hours = (ms: number) => ms / 3600_000;

describe('built-in CA: root', () => {
  it('is a self-signed ECDSA P-256 CA with the trust domain as its SPIFFE URI SAN', async () => {
    const ca = await open();
    const roots = ca.roots();
    expect(roots.trustDomain).toBe(trustDomainFor(ca.clusterId));
    expect(ca.clusterId).toMatch(
      /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );
    expect(roots.roots).toHaveLength(1);
    expect(roots.roots[0]).toMatchObject({ id: roots.activeRootId, active: true });
    const root = activeRoot(ca);
    expect(root.ca).toBe(true);
    expect(root.subjectAltName).toBe(`URI:spiffe://${ca.trustDomain}`);
    expect(root.subject).toMatch(/^CN=isthmus CA [0-9a-f]{8}$/);
    expect(root.checkIssued(root)).toBe(true);
    expect(root.verify(root.publicKey)).toBe(true);
    expect(root.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(hours(new Date(root.validTo).getTime() - Date.now()) / 24 / 365).toBeCloseTo(10, 1);
    const parsed = new x509.X509Certificate(roots.roots[0]!.certPem);
    const bc = parsed.getExtension(x509.BasicConstraintsExtension)!;
    expect({ ca: bc.ca, critical: bc.critical }).toEqual({ ca: true, critical: true });
    expect(parsed.getExtension(x509.KeyUsagesExtension)!.usages).toBe(
      x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
    );
    expect(roots.roots[0]!.signingKeyId).toBe(
      parsed.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId.match(/../g)!.join(':'),
    );
  });

  it('keeps its private key in <dataDir>/ca with mode 0600 (dir 0700), matching the root certificate', async () => {
    const ca = await open();
    const id = ca.roots().activeRootId;
    const file = path.join(dir, 'ca', `${id.replaceAll(':', '')}.key`);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.join(dir, 'ca')).mode & 0o777).toBe(0o700);
    const key = createPrivateKey(fs.readFileSync(file, 'utf8'));
    const signature = sign('sha256', Buffer.from('x'), key);
    expect(verify('sha256', Buffer.from('x'), activeRoot(ca).publicKey, signature)).toBe(true);
    expect(JSON.stringify(await store.list('ca/'))).not.toContain('PRIVATE KEY');
  });

  it('persists cluster ID, trust domain and root across a reopen', async () => {
    const first = await open();
    const before = {
      clusterId: first.clusterId,
      trustDomain: first.trustDomain,
      roots: first.roots(),
    };
    await first.close();
    const again = await open();
    expect({
      clusterId: again.clusterId,
      trustDomain: again.trustDomain,
      roots: again.roots(),
    }).toEqual(before);
    const leaf = await again.leaf({ spiffeId: web(again) });
    expect(new X509Certificate(leaf.certPem).verify(activeRoot(again).publicKey)).toBe(true);
  });

  it('uses a configured trust domain for a new cluster and refuses to change it later', async () => {
    const ca = await open({ trustDomain: 'example.test' });
    expect(ca.roots().trustDomain).toBe('example.test');
    await ca.close();
    await expect(open({ trustDomain: 'other.test' })).rejects.toMatchObject({
      code: 'failed_precondition',
    });
  });

  it('refuses to start without the active root key file, naming the file', async () => {
    const ca = await open();
    const id = ca.roots().activeRootId;
    await ca.close();
    fs.rmSync(path.join(dir, 'ca', `${id.replaceAll(':', '')}.key`));
    const err = await open().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IsthmusError);
    expect(err).toMatchObject({
      code: 'failed_precondition',
      message: expect.stringContaining(path.join(dir, 'ca')),
    });
  });
});

describe('built-in CA: leaves', () => {
  it('issues a 72 h ECDSA leaf for a service SPIFFE ID that verifies against the root', async () => {
    const ca = await open();
    const spiffeId = web(ca);
    const leaf = await ca.leaf({ spiffeId });
    const cert = new X509Certificate(leaf.certPem);
    const root = activeRoot(ca);
    expect(leaf).toMatchObject({ spiffeId, rootId: ca.roots().activeRootId });
    expect(cert.checkIssued(root)).toBe(true);
    expect(cert.verify(root.publicKey)).toBe(true);
    expect(cert.ca).toBe(false);
    expect(cert.subjectAltName).toBe(`URI:${spiffeId}`);
    expect(cert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    expect(cert.serialNumber.toLowerCase()).toBe(leaf.serial.replaceAll(':', ''));
    expect(hours(leaf.notAfter.getTime() - leaf.notBefore.getTime())).toBeCloseTo(
      hours(defaultLeafTtlMs + 60_000),
      2,
    );
    expect(leaf.notBefore.getTime()).toBeLessThanOrEqual(Date.now() - 59_000);
    // The dates the leaf reports are the certificate's own.
    expect(leaf.notBefore).toEqual(new Date(cert.validFrom));
    expect(leaf.notAfter).toEqual(new Date(cert.validTo));
    const key = createPrivateKey(leaf.keyPem);
    expect(key.asymmetricKeyType).toBe('ec');
    expect(createPublicKey(key).export({ format: 'der', type: 'spki' })).toEqual(
      cert.publicKey.export({ format: 'der', type: 'spki' }),
    );
    const parsed = new x509.X509Certificate(leaf.certPem);
    expect(parsed.getExtension(x509.BasicConstraintsExtension)).toMatchObject({
      ca: false,
      critical: true,
    });
    expect(
      parsed.getExtension(x509.KeyUsagesExtension)!.usages & x509.KeyUsageFlags.digitalSignature,
    ).toBeTruthy();
    expect(parsed.getExtension(x509.AuthorityKeyIdentifierExtension)!.keyId).toBe(
      ca.roots().roots[0]!.signingKeyId!.replaceAll(':', ''),
    );
    // The subject key identifier is the SHA-1 of the key, as @peculiar/x509 computes it.
    expect(parsed.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId).toBe(
      (await x509.SubjectKeyIdentifierExtension.create(parsed.publicKey)).keyId,
    );
  });

  it('adds DNS SANs when asked, and a mesh gateway identity works too', async () => {
    const ca = await open();
    const spiffeId = meshGatewaySpiffeId(ca.trustDomain, 'dc1');
    const leaf = await ca.leaf({ spiffeId, dnsSans: ['server.dc1.peering.example', 'gw.local'] });
    expect(new X509Certificate(leaf.certPem).subjectAltName).toBe(
      `URI:${spiffeId}, DNS:server.dc1.peering.example, DNS:gw.local`,
    );
  });

  it('caches per identity (concurrent callers share one issuance) and refuses other trust domains', async () => {
    const ca = await open();
    const [a, b] = await Promise.all([
      ca.leaf({ spiffeId: web(ca) }),
      ca.leaf({ spiffeId: web(ca) }),
    ]);
    expect(a).toBe(b);
    expect(await ca.leaf({ spiffeId: web(ca) })).toBe(a);
    expect(
      (await ca.leaf({ spiffeId: serviceSpiffeId(ca.trustDomain, 'dc1', { name: 'api' }) })).serial,
    ).not.toBe(a.serial);
    await expect(
      ca.leaf({ spiffeId: serviceSpiffeId('other.consul', 'dc1', { name: 'web' }) }),
    ).rejects.toMatchObject({ code: 'invalid_argument' });
  });

  it('renews a leaf after 60% of its lifetime and emits leaf-renewed', async () => {
    const ca = await open({ leafTtlMs: 1_000 });
    const events: CaEvent[] = [];
    ca.subscribe((e) => events.push(e));
    const startedAt = Date.now();
    const first = await ca.leaf({ spiffeId: web(ca) });
    const renewed = await waitFor(() => events.find((e) => e.kind === 'leaf-renewed'), {
      timeoutMs: 5_000,
      what: 'leaf-renewed',
    });
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(550);
    if (renewed.kind !== 'leaf-renewed') throw new Error('unreachable');
    expect(renewed.leaf.spiffeId).toBe(first.spiffeId);
    expect(renewed.leaf.serial).not.toBe(first.serial);
    expect(await ca.leaf({ spiffeId: web(ca) })).toBe(renewed.leaf);
    // And again: renewal keeps going for as long as the CA runs.
    await waitFor(() => events.filter((e) => e.kind === 'leaf-renewed').length >= 2, {
      timeoutMs: 5_000,
      what: 'a second renewal',
    });
  });
});

describe('built-in CA: a leaf per proxy instance (issue 18)', () => {
  const api = (ca: CertificateAuthority) => serviceSpiffeId(ca.trustDomain, 'dc1', { name: 'api' });
  const spki = (certPem: string) =>
    new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' }).toString('hex');

  it('gives two instances of a service different key pairs and serials under the same SPIFFE ID', async () => {
    const ca = await open();
    const [one, two] = await Promise.all([
      ca.leaf({ spiffeId: api(ca), holder: 'api-1-sidecar-proxy' }),
      ca.leaf({ spiffeId: api(ca), holder: 'api-2-sidecar-proxy' }),
    ]);
    expect(one.holder).toBe('api-1-sidecar-proxy');
    expect(two.holder).toBe('api-2-sidecar-proxy');
    for (const leaf of [one, two])
      expect(new X509Certificate(leaf.certPem).subjectAltName).toBe(`URI:${api(ca)}`);
    expect(two.keyPem).not.toBe(one.keyPem);
    expect(spki(two.certPem)).not.toBe(spki(one.certPem));
    expect(two.serial).not.toBe(one.serial);
    // Each certificate carries its own key.
    expect(
      createPublicKey(createPrivateKey(one.keyPem))
        .export({ type: 'spki', format: 'der' })
        .toString('hex'),
    ).toBe(spki(one.certPem));
    // Cached per instance.
    expect(await ca.leaf({ spiffeId: api(ca), holder: 'api-1-sidecar-proxy' })).toBe(one);
  });

  it('never hands out a released leaf again: the same holder ID gets a new key, and it is not renewed', async () => {
    const ca = await open({ leafTtlMs: 1_000 });
    const events: CaEvent[] = [];
    ca.subscribe((e) => events.push(e));
    const first = await ca.leaf({ spiffeId: api(ca), holder: 'api-1-sidecar-proxy' });
    await ca.leaf({ spiffeId: api(ca), holder: 'api-2-sidecar-proxy' });
    ca.release('api-1-sidecar-proxy');
    // api-2 keeps being renewed; api-1's released leaf never is.
    await waitFor(() => events.filter((e) => e.kind === 'leaf-renewed').length >= 2, {
      timeoutMs: 5_000,
      what: 'two renewals of api-2',
    });
    const holders = events.flatMap((e) => (e.kind === 'leaf-renewed' ? [e.leaf.holder] : []));
    expect(new Set(holders)).toEqual(new Set(['api-2-sidecar-proxy']));
    const again = await ca.leaf({ spiffeId: api(ca), holder: 'api-1-sidecar-proxy' });
    expect(again.keyPem).not.toBe(first.keyPem);
    expect(again.serial).not.toBe(first.serial);
  });

  it('keeps nothing of an issuance under way when its holder is released', async () => {
    const ca = await open();
    const pending = ca.leaf({ spiffeId: api(ca), holder: 'api-1-sidecar-proxy' });
    ca.release('api-1-sidecar-proxy');
    const issued = await pending;
    const next = await ca.leaf({ spiffeId: api(ca), holder: 'api-1-sidecar-proxy' });
    expect(next.keyPem).not.toBe(issued.keyPem);
  });

  it('issues a new leaf when a holder changes identity (its sidecar fronts another service)', async () => {
    const ca = await open();
    const before = await ca.leaf({ spiffeId: api(ca), holder: 'x-sidecar-proxy' });
    const after = await ca.leaf({ spiffeId: web(ca), holder: 'x-sidecar-proxy' });
    expect(new X509Certificate(after.certPem).subjectAltName).toBe(`URI:${web(ca)}`);
    expect(after.keyPem).not.toBe(before.keyPem);
    expect(await ca.leaf({ spiffeId: web(ca), holder: 'x-sidecar-proxy' })).toBe(after);
  });
});

describe('built-in CA: leaves nothing uses', () => {
  it('are not renewed: the identity is forgotten at its renewal time, and issued anew if asked for again', async () => {
    const used = new Set<string>();
    const ca = await open({ leafTtlMs: 1_000, leafInUse: (id) => used.has(id.spiffeId) });
    const events: CaEvent[] = [];
    ca.subscribe((e) => events.push(e));
    const api = serviceSpiffeId(ca.trustDomain, 'dc1', { name: 'api' });
    used.add(web(ca));
    const first = await ca.leaf({ spiffeId: web(ca) });
    const gone = await ca.leaf({ spiffeId: api });
    await waitFor(() => events.filter((e) => e.kind === 'leaf-renewed').length >= 2, {
      timeoutMs: 5_000,
      what: 'two renewals of web',
    });
    // web was renewed; api, used by nothing, never was.
    const renewed = events.flatMap((e) => (e.kind === 'leaf-renewed' ? [e.leaf.spiffeId] : []));
    expect(new Set(renewed)).toEqual(new Set([web(ca)]));
    expect((await ca.leaf({ spiffeId: web(ca) })).serial).not.toBe(first.serial);
    // Asked for again (a proxy of api registers): a new leaf, issued on demand.
    const again = await ca.leaf({ spiffeId: api });
    expect(again.serial).not.toBe(gone.serial);
    expect(again.spiffeId).toBe(api);
  });
});

describe('built-in CA: logs', () => {
  it('never writes key material to the log', async () => {
    let output = '';
    const sink = new Writable({
      write: (chunk, _enc, done) => void ((output += String(chunk)), done()),
    });
    const logger = createLogger('trace', sink);
    const ca = await open({ logger, leafTtlMs: 400, rotation: { phaseMs: 50 } });
    await ca.leaf({ spiffeId: web(ca) });
    await ca.rotate();
    await waitFor(
      () =>
        ca.roots().roots.length === 1 &&
        ca.roots().activeRootId !== undefined &&
        output.includes('rotation finished'),
      {
        timeoutMs: 5_000,
        what: 'the rotation to finish',
      },
    );
    await ca.close();
    logger.flush();
    expect(output).toContain('CA root created');
    expect(output).toContain('leaf certificate issued');
    expect(output).not.toMatch(/PRIVATE KEY|BEGIN|MIG[A-Za-z0-9+/]{20}/);
  });
});
