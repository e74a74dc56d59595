import { X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { beforeAll, describe, expect, it } from 'vitest';
import { createIntermediateRequest, signIntermediate } from '../../src/ca/intermediate.js';
import { createRoot, issueLeaf, loadSigner } from '../../src/ca/x509.js';
import { checkClientCertificate } from '../../src/peering/client-cert.js';

let pinned: string;
let other: string;
let leafDer: Buffer;
let strangerDer: Buffer;
/** A WAN federation secondary's leaf: signed by an intermediate the pinned root signed (§6c). */
let secondaryLeafDer: Buffer;
let intermediate: X509Certificate;
let strangerIntermediate: X509Certificate;
const now = Date.now();

beforeAll(async () => {
  const root = await createRoot({
    rootUri: 'spiffe://b.consul',
    name: 'b',
    now,
    validityMs: 3600_000,
  });
  const otherRoot = await createRoot({
    rootUri: 'spiffe://evil.consul',
    name: 'evil',
    now,
    validityMs: 3600_000,
  });
  pinned = root.certPem;
  other = otherRoot.certPem;
  const leaf = await issueLeaf(await loadSigner(root.id, root.certPem, root.keyPem), {
    spiffeId: 'spiffe://b.consul/peering/server/dc/dc-b',
    now,
    ttlMs: 3600_000,
  });
  const stranger = await issueLeaf(
    await loadSigner(otherRoot.id, otherRoot.certPem, otherRoot.keyPem),
    { spiffeId: 'spiffe://b.consul/peering/server/dc/dc-b', now, ttlMs: 3600_000 },
  );
  leafDer = new X509Certificate(leaf.certPem).raw;
  strangerDer = new X509Certificate(stranger.certPem).raw;
  const intermediateFrom = async (r: typeof root) => {
    const req = await createIntermediateRequest({ datacenter: 'dc2' });
    const signer = await loadSigner(r.id, r.certPem, r.keyPem);
    const pem = await signIntermediate(signer, req.csrPem, {
      trustDomainUri: 'spiffe://b.consul',
      datacenter: 'dc2',
      now,
    });
    return { pem, signer: await loadSigner('intermediate', pem, req.keyPem) };
  };
  const mine = await intermediateFrom(root);
  intermediate = new X509Certificate(mine.pem);
  strangerIntermediate = new X509Certificate((await intermediateFrom(otherRoot)).pem);
  const secondaryLeaf = await issueLeaf(mine.signer, {
    spiffeId: 'spiffe://b.consul/peering/server/dc/dc2',
    now,
    ttlMs: 3600_000,
  });
  secondaryLeafDer = new X509Certificate(secondaryLeaf.certPem).raw;
});

const peer = (raw: Buffer | undefined) => (raw ? ({ raw } as PeerCertificate) : undefined);

describe("checkClientCertificate (for the stream: the dialer's certificate against its pinned roots)", () => {
  it('accepts a leaf signed by a pinned root and returns its URI SANs', () => {
    expect(checkClientCertificate(peer(leafDer), [other, pinned], now)).toEqual({
      ok: true,
      value: ['spiffe://b.consul/peering/server/dc/dc-b'],
    });
  });

  it('refuses no certificate, a certificate from other roots, garbage and an expired one', () => {
    expect(checkClientCertificate(peer(undefined), [pinned])).toEqual({
      ok: false,
      error: 'no client certificate was presented',
    });
    expect(checkClientCertificate({} as PeerCertificate, [pinned])).toMatchObject({ ok: false });
    expect(checkClientCertificate(peer(strangerDer), [pinned], now)).toEqual({
      ok: false,
      error: 'the client certificate does not chain to the roots pinned for this peering',
    });
    expect(checkClientCertificate(peer(leafDer), [], now)).toMatchObject({ ok: false });
    expect(checkClientCertificate(peer(Buffer.from('garbage')), [pinned], now)).toEqual({
      ok: false,
      error: 'the client certificate does not parse',
    });
    expect(checkClientCertificate(peer(leafDer), [pinned], now + 2 * 3600_000)).toEqual({
      ok: false,
      error: 'the client certificate is expired or not yet valid',
    });
  });

  it("accepts a federation secondary's leaf through the intermediate the dialer sent", () => {
    expect(checkClientCertificate(peer(secondaryLeafDer), [pinned], now, [intermediate])).toEqual({
      ok: true,
      value: ['spiffe://b.consul/peering/server/dc/dc2'],
    });
    const refused = {
      ok: false,
      error: 'the client certificate does not chain to the roots pinned for this peering',
    };
    // Without its intermediate, or through one another root signed, it chains to nothing pinned.
    expect(checkClientCertificate(peer(secondaryLeafDer), [pinned], now)).toEqual(refused);
    expect(
      checkClientCertificate(peer(secondaryLeafDer), [pinned], now, [strangerIntermediate]),
    ).toEqual(refused);
    expect(checkClientCertificate(peer(secondaryLeafDer), [other], now, [intermediate])).toEqual(
      refused,
    );
  });
});
