/**
 * One key per proxy instance (issue 18), through the real HTTP API, snapshot manager, CA and xDS
 * server, read by Delta fake Envoys: two instances of `api` present the same SPIFFE ID with
 * different key pairs, a deregistered instance's key is never handed out again, a rotation
 * re-issues every instance's leaf, and two mesh gateways hold a key each.
 */
import { X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Secret } from '../../src/gen/envoy/extensions/transport_sockets/tls/v3/secret.js';
import { leafSecretName, meshGatewaySpiffeId, serviceSpiffeId } from '../../src/mesh/names.js';
import { inlineText } from '../../src/probe/pushed-tls.js';
import { TypeUrl } from '../../src/xds/types.js';
import type { EnvoyLike } from '../helpers/envoy-like.js';
import { startMeshServer, type MeshServer } from '../helpers/mesh-server.js';
import { exportEntry, startPeeredMeshes, type PeeredMeshes } from '../helpers/peered-mesh.js';
import { clientFromUpstream, handshake, serverFromPublicListener } from '../helpers/pushed-tls.js';
import { waitFor } from '../helpers/wait.js';

interface HeldLeaf {
  readonly certPem: string;
  readonly keyPem: string;
}

/** The leaf certificate and key a proxy holds in its SDS secret `name` (undefined until then). */
function heldLeaf(envoy: EnvoyLike, name: string): HeldLeaf | undefined {
  const secret = envoy.get(TypeUrl.secret, name) as Secret | undefined;
  if (secret?.type?.$case !== 'tlsCertificate') return undefined;
  const certPem = inlineText(secret.type.value.certificateChain);
  const keyPem = inlineText(secret.type.value.privateKey);
  return certPem && keyPem ? { certPem, keyPem } : undefined;
}

/** Waits (deadline) until the proxy holds a leaf in `name` that satisfies `ready`. */
function leafWhen(
  envoy: EnvoyLike,
  name: string,
  ready: (leaf: HeldLeaf) => boolean,
  what: string,
): Promise<HeldLeaf> {
  return waitFor(
    () => {
      const leaf = heldLeaf(envoy, name);
      return leaf !== undefined && ready(leaf) && leaf;
    },
    { timeoutMs: 15_000, intervalMs: 20, what: `${envoy.nodeId}: ${what}` },
  );
}

const uri = (certPem: string) => new X509Certificate(certPem).subjectAltName;
const serial = (certPem: string) => new X509Certificate(certPem).serialNumber;
const signedBy = (certPem: string, rootPem: string) =>
  new X509Certificate(certPem).verify(new X509Certificate(rootPem).publicKey);

function apiInstance(id: string, port: number) {
  return {
    ID: id,
    Name: 'api',
    Address: '127.0.0.1',
    Port: port,
    Check: { TTL: '600s', Status: 'passing' },
    Connect: { SidecarService: {} },
  };
}

describe('a leaf per sidecar instance', () => {
  /** Long enough to see each phase's pushes on the loaded test machine. */
  const phaseMs = 2_000;
  let mesh: MeshServer;
  let td: string;
  let api1: EnvoyLike;
  let api2: EnvoyLike;
  let web: EnvoyLike;
  const apiLeaf = () => leafSecretName(serviceSpiffeId(td, 'dc1', { name: 'api' }));
  const anyLeaf = () => true;
  const publicListener = (e: EnvoyLike) =>
    e.names(TypeUrl.listener).find((n) => n.startsWith('public_listener:'));

  beforeAll(async () => {
    mesh = await startMeshServer({ caRotationPhaseMs: String(phaseMs) });
    td = mesh.server.ca.trustDomain;
    await mesh.register(apiInstance('api-1', 9090));
    await mesh.register(apiInstance('api-2', 9091));
    await mesh.register({
      ID: 'web',
      Name: 'web',
      Address: '127.0.0.1',
      Port: 8080,
      Connect: {
        SidecarService: {
          Proxy: { Upstreams: [{ DestinationName: 'api', LocalBindPort: 19090 }] },
        },
      },
    });
    api1 = await mesh.connect('api-1-sidecar-proxy');
    api2 = await mesh.connect('api-2-sidecar-proxy');
    web = await mesh.connect('web-sidecar-proxy');
  });

  afterAll(async () => {
    await mesh?.close();
  });

  it('gives two instances of api different keys and certificates with the same SPIFFE ID', async () => {
    const one = await leafWhen(api1, apiLeaf(), anyLeaf, 'its leaf');
    const two = await leafWhen(api2, apiLeaf(), anyLeaf, 'its leaf');
    const spiffeUri = `URI:${serviceSpiffeId(td, 'dc1', { name: 'api' })}`;
    expect(uri(one.certPem)).toBe(spiffeUri);
    expect(uri(two.certPem)).toBe(spiffeUri);
    expect(two.keyPem).not.toBe(one.keyPem);
    expect(serial(two.certPem)).not.toBe(serial(one.certPem));
    const root = mesh.server.ca.roots().roots[0]!.certPem;
    expect(signedBy(one.certPem, root) && signedBy(two.certPem, root)).toBe(true);

    // web's upstream, built from what web was pushed, handshakes with each instance's listener,
    // and each presents its own certificate.
    await waitFor(() => clientFromUpstream(web, `api.default.dc1.internal.${td}`), {
      timeoutMs: 10_000,
      what: "web's api upstream TLS material",
    });
    const client = clientFromUpstream(web, `api.default.dc1.internal.${td}`);
    for (const [envoy, leaf] of [
      [api1, one],
      [api2, two],
    ] as const) {
      await envoy.until((e) => publicListener(e) !== undefined, 'its public listener');
      const server = serverFromPublicListener(envoy, publicListener(envoy)!);
      expect(server.cert).toBe(leaf.certPem);
      expect(await handshake(client, server), `web → ${envoy.nodeId}`).toMatchObject({
        ok: true,
        value: { clientSawServerUris: [spiffeUri.slice('URI:'.length)] },
      });
    }
  });

  it('never hands a deregistered instance its key again: registered anew, it gets a new one', async () => {
    const before = await leafWhen(api1, apiLeaf(), anyLeaf, 'its leaf');
    const other = await leafWhen(api2, apiLeaf(), anyLeaf, 'its leaf');
    expect((await mesh.api('PUT', '/v1/agent/service/deregister/api-1')).status).toBe(200);
    await mesh.server.snapshots.settled();
    await api1.until((e) => e.names(TypeUrl.listener).length === 0, 'its config removed');
    await mesh.register(apiInstance('api-1', 9090));
    const after = await leafWhen(
      api1,
      apiLeaf(),
      (l) => l.keyPem !== before.keyPem,
      'a leaf after registering again',
    );
    expect(after.keyPem).not.toBe(other.keyPem);
    expect(serial(after.certPem)).not.toBe(serial(before.certPem));
    expect(uri(after.certPem)).toBe(uri(before.certPem));
    // The other instance kept its leaf.
    expect(heldLeaf(api2, apiLeaf())).toEqual(other);
  });

  it('re-issues every instance its own leaf under the new root in a CA rotation', async () => {
    const before = await Promise.all(
      [api1, api2].map((e) => leafWhen(e, apiLeaf(), anyLeaf, 'its leaf')),
    );
    const oldRootId = mesh.server.ca.roots().activeRootId;
    expect((await mesh.api('POST', '/v1/connect/ca/rotate')).status).toBe(200);
    const newRoot = await waitFor(
      () => {
        const { roots, activeRootId } = mesh.server.ca.roots();
        return activeRootId !== oldRootId && roots.find((r) => r.id === activeRootId);
      },
      { timeoutMs: 15_000, intervalMs: 20, what: 'the new root to sign' },
    );
    const after = await Promise.all(
      [api1, api2].map((e) =>
        leafWhen(
          e,
          apiLeaf(),
          (l) => signedBy(l.certPem, newRoot.certPem),
          'a leaf of the new root',
        ),
      ),
    );
    expect(after[0]!.keyPem).not.toBe(after[1]!.keyPem);
    for (const [i, leaf] of after.entries()) expect(leaf.keyPem).not.toBe(before[i]!.keyPem);
  });
});

describe('a leaf per mesh gateway instance', () => {
  let meshes: PeeredMeshes;

  beforeAll(async () => {
    meshes = await startPeeredMeshes();
  });

  afterAll(async () => {
    await meshes?.close();
  });

  it('gives two gateways of a datacenter different keys under the gateways’ SPIFFE ID', async () => {
    const { a } = meshes;
    const td = a.server.ca.trustDomain;
    // An HTTP-family export is terminated at the gateway, which then presents its own leaf.
    await a.register(apiInstance('api-1', 9092));
    await a.putConfig({ Kind: 'service-defaults', Name: 'api', Protocol: 'http' });
    await a.putConfig(exportEntry({ api: ['cluster-b'] }));
    for (const [id, port] of [
      ['gw-1', 8443],
      ['gw-2', 8444],
    ] as const)
      await a.register({
        ID: id,
        Name: 'mesh-gateway',
        Kind: 'mesh-gateway',
        Address: '127.0.0.1',
        Port: port,
        TaggedAddresses: { wan: { Address: '203.0.113.7', Port: port } },
      });
    const spiffeId = meshGatewaySpiffeId(td, 'dc-a');
    const [one, two] = await Promise.all(
      ['gw-1', 'gw-2'].map(async (id) =>
        leafWhen(await a.connect(id), leafSecretName(spiffeId), () => true, 'its leaf'),
      ),
    );
    expect(uri(one!.certPem)).toBe(`URI:${spiffeId}`);
    expect(uri(two!.certPem)).toBe(`URI:${spiffeId}`);
    expect(two!.keyPem).not.toBe(one!.keyPem);
  });
});
