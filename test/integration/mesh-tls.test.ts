/**
 * Real mutual-TLS handshakes (Node `tls` on 127.0.0.1) built only from what isthmus pushed to two
 * Delta fake Envoys: the client from web's sidecar upstream cluster for api (SDS leaf, SDS roots,
 * SNI, exact SPIFFE SAN matcher), the server from api's sidecar public_listener (SDS leaf, SDS
 * roots, client certificate required). Issue 3 "What must be shown"; docs/architecture.md §9 item
 * 6.
 */
import { X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRoot, issueLeaf, loadSigner } from '../../src/ca/x509.js';
import { TypeUrl } from '../../src/xds/types.js';
import type { EnvoyLike } from '../helpers/envoy-like.js';
import { startMeshServer, type MeshServer } from '../helpers/mesh-server.js';
import {
  type ClientTls,
  type ServerTls,
  clientFromUpstream,
  handshake,
  serverFromPublicListener,
  splitPems,
} from '../helpers/pushed-tls.js';
import { waitFor } from '../helpers/wait.js';

/**
 * Each rotation phase lasts this long; long enough to observe every phase's pushes on both proxies.
 */
const phaseMs = 2_000;

let mesh: MeshServer;
let web: EnvoyLike;
let api: EnvoyLike;
let td: string;
let apiListener: string;
const sni = (svc: string) => `${svc}.default.dc1.internal.${td}`;
const spiffe = (svc: string) => `spiffe://${td}/ns/default/dc/dc1/svc/${svc}`;

function withSidecar(name: string, port: number, upstreams: unknown[] = []) {
  return {
    ID: name,
    Name: name,
    Address: '127.0.0.1',
    Port: port,
    Check: { TTL: '30s', Status: 'passing' },
    Connect: { SidecarService: { Proxy: { Upstreams: upstreams } } },
  };
}

/** What the two proxies hold now: web's client side for api, and api's server side. */
function pushed(): { client: ClientTls; server: ServerTls } {
  return {
    client: clientFromUpstream(web, sni('api')),
    server: serverFromPublicListener(api, apiListener),
  };
}

/** Waits (deadline) until the pushed material satisfies `ready`, and returns it. */
function pushedWhen(
  ready: (m: ReturnType<typeof pushed>) => boolean,
  what: string,
  timeoutMs = 10_000,
) {
  return waitFor(
    () => {
      const m = pushed();
      return ready(m) && m;
    },
    { timeoutMs, intervalMs: 20, what },
  );
}

/**
 * OpenSSL and BoringSSL read a PEM bundle line by line: a certificate whose BEGIN line is glued to
 * the previous END line is not a certificate, and the whole bundle fails to load.
 */
function expectPemBundle(bundle: string, what: string): void {
  expect(
    bundle,
    `${what}: every certificate of the trusted_ca bundle starts on its own line`,
  ).not.toMatch(/[^\n]-----BEGIN /);
}

const issuedBy = (certPem: string, rootPem: string) =>
  new X509Certificate(certPem).verify(new X509Certificate(rootPem).publicKey);

beforeAll(async () => {
  mesh = await startMeshServer({ caRotationPhaseMs: String(phaseMs) });
  td = mesh.server.ca.trustDomain;
  await mesh.register(withSidecar('api', 9090));
  await mesh.register(withSidecar('db', 5432));
  await mesh.register(
    withSidecar('web', 8080, [
      { DestinationName: 'api', LocalBindPort: 19090 },
      { DestinationName: 'db', LocalBindPort: 15432 },
    ]),
  );
  web = await mesh.connect('web-sidecar-proxy');
  api = await mesh.connect('api-sidecar-proxy');
  await api.until(
    (e) => e.names(TypeUrl.listener).some((n) => n.startsWith('public_listener:')),
    'api public listener',
  );
  apiListener = api.names(TypeUrl.listener).find((n) => n.startsWith('public_listener:'))!;
  await pushedWhen(() => true, 'TLS material for web → api on both proxies');
  await waitFor(() => clientFromUpstream(web, sni('db')), {
    timeoutMs: 10_000,
    what: "web's db upstream TLS material",
  });
});

afterAll(async () => {
  await mesh?.close();
});

describe('mTLS from pushed config', () => {
  it("web's upstream cluster for api handshakes with api's public listener; each side sees the other's SPIFFE ID", async () => {
    const { client, server } = pushed();
    expect(client.servername).toBe(sni('api'));
    expect(client.sanMatchers).toEqual([spiffe('api')]);

    const result = await handshake(client, server);
    expect(result).toMatchObject({
      ok: true,
      value: {
        serverSawClientUris: [spiffe('web')],
        clientSawServerUris: [spiffe('api')],
      },
    });
  });

  it('fails on identity when the SAN matcher names another service', async () => {
    const { server } = pushed();
    const toDb = clientFromUpstream(web, sni('db'));
    expect(toDb.servername).toBe(sni('db'));
    expect(toDb.sanMatchers).toEqual([spiffe('db')]);

    // web's db upstream dialled at api: the chain is trusted, the identity is not db's.
    const result = await handshake(toDb, server);
    expect(result.ok).toBe(false);
    expect(result).toMatchObject({
      error: { clientError: expect.stringMatching(/match none of the SAN matchers/) },
    });
    expect(JSON.stringify(result)).toContain(spiffe('api'));
  });

  it('fails for a client certificate that is not from the cluster CA, even with the right SPIFFE ID', async () => {
    const { client, server } = pushed();
    // An impostor CA claiming the same trust domain, issuing web's identity.
    const now = Date.now();
    const root = await createRoot({
      rootUri: `spiffe://${td}`,
      name: 'impostor',
      now,
      validityMs: 3600_000,
    });
    const leaf = await issueLeaf(await loadSigner(root.id, root.certPem, root.keyPem), {
      spiffeId: spiffe('web'),
      now,
      ttlMs: 3600_000,
    });
    const impostor: ClientTls = { ...client, cert: leaf.certPem, key: leaf.keyPem };

    const result = await handshake(impostor, server);
    expect(result.ok).toBe(false);
    expect(result).toMatchObject({
      error: { serverError: expect.stringMatching(/^client certificate rejected: /) },
    });
    // The same client with its pushed certificate is accepted: only the certificate differs.
    expect((await handshake(client, server)).ok).toBe(true);
  });

  it('keeps handshaking across a CA rotation, with every mix of previous- and current-phase material, and pushes only secrets', async () => {
    await web.settle();
    await api.settle();
    const marks = { web: web.log.length, api: api.log.length };
    const before = pushed();
    const [oldRoot] = splitPems(before.client.ca);
    expect(splitPems(before.client.ca)).toHaveLength(1);
    expect(splitPems(before.server.ca)).toEqual([oldRoot]);

    const rotate = await mesh.api('POST', '/v1/connect/ca/rotate');
    expect(rotate.status).toBe(200);
    const phaseDeadline = phaseMs + 10_000;

    // Phase 1, trust-both: both proxies trust the new root; the old root still signs the leaves.
    const trustBoth = await pushedWhen(
      (m) => splitPems(m.client.ca).length === 2 && splitPems(m.server.ca).length === 2,
      'both proxies to hold two roots (trust-both)',
      phaseDeadline,
    );
    const newRoot = splitPems(trustBoth.client.ca).find((p) => p !== oldRoot)!;
    expect(splitPems(trustBoth.server.ca).sort()).toEqual([oldRoot, newRoot].sort());
    expect(trustBoth.client.cert).toBe(before.client.cert);
    expect(trustBoth.server.cert).toBe(before.server.cert);
    await expectMixedHandshakes(before, trustBoth, 'trust-both');

    // Phase 2, reissue: every leaf is re-issued under the new root; both roots still trusted.
    const reissue = await pushedWhen(
      (m) => issuedBy(m.client.cert, newRoot) && issuedBy(m.server.cert, newRoot),
      'both proxies to hold leaves issued under the new root (reissue)',
      phaseDeadline,
    );
    expect(splitPems(reissue.client.ca), 'client roots during reissue').toHaveLength(2);
    expect(splitPems(reissue.server.ca), 'server roots during reissue').toHaveLength(2);
    await expectMixedHandshakes(trustBoth, reissue, 'reissue');

    // Phase 3, retired: only the new root is trusted.
    const retired = await pushedWhen(
      (m) => splitPems(m.client.ca).length === 1 && splitPems(m.server.ca).length === 1,
      'both proxies to hold one root (old root retired)',
      phaseDeadline,
    );
    expect(splitPems(retired.client.ca)).toEqual([newRoot]);
    expect(splitPems(retired.server.ca)).toEqual([newRoot]);
    await expectMixedHandshakes(reissue, retired, 'retired');

    // What the phases protect against: a proxy that kept its pre-rotation material no longer
    // connects.
    expect((await handshake(before.client, retired.server)).ok).toBe(false);
    expect((await handshake(retired.client, before.server)).ok).toBe(false);

    // A rotation re-sends secrets only (docs/architecture.md §5 "Secrets"): no cluster, listener,
    // endpoint or route push.
    await web.settle();
    await api.settle();
    for (const [envoy, mark, leaf] of [
      [web, marks.web, 'web'],
      [api, marks.api, 'api'],
    ] as const) {
      const pushes = envoy.log.slice(mark);
      expect(pushes.length, `${envoy.nodeId} pushes during the rotation`).toBeGreaterThanOrEqual(3);
      expect(new Set(pushes.map((p) => p.typeUrl)), `${envoy.nodeId} push types`).toEqual(
        new Set([TypeUrl.secret]),
      );
      expect(new Set(pushes.flatMap((p) => [...p.names, ...p.removed]))).toEqual(
        new Set([`leaf:${spiffe(leaf)}`, 'roots:local']),
      );
    }
  });
});

/** previous × current, current × previous and current × current (client × server) all succeed. */
async function expectMixedHandshakes(
  prev: ReturnType<typeof pushed>,
  now: ReturnType<typeof pushed>,
  phase: string,
): Promise<void> {
  expectPemBundle(now.client.ca, `${phase}: web's roots for api`);
  expectPemBundle(now.server.ca, `${phase}: api's roots`);
  const pairs = [
    ['previous client × current server', prev.client, now.server],
    ['current client × previous server', now.client, prev.server],
    ['current client × current server', now.client, now.server],
  ] as const;
  for (const [what, client, server] of pairs) {
    const result = await handshake(client, server);
    expect(result, `${phase}: ${what}`).toMatchObject({
      ok: true,
      value: {
        serverSawClientUris: [spiffe('web')],
        clientSawServerUris: [spiffe('api')],
      },
    });
  }
}
