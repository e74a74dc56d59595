/**
 * A peer is held to its word (issue 18), against a real server: A (isthmus, in-process) accepts a
 * peering from a test dialer that speaks the peering protocol itself (ExchangeSecret over TLS, then
 * the replication stream with its own client certificate) so it can misbehave, while B (a real
 * isthmus) is peered with A too. The test dialer sends trust bundles for the wrong trust domain,
 * for A's own and for B's, and a service whose SPIFFE ID lies in B's: each is NACKed with
 * INVALID_ARGUMENT and the reason, recorded as the peering's LastError, shown as ✗ by troubleshoot,
 * and changes nothing: A keeps the bundle it had, and a connected sidecar never sees another.
 */
import type * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRoot, issueLeaf, loadSigner } from '../../src/ca/x509.js';
import {
  ExportedService,
  ExportedServiceList,
  ReplicationMessage,
  ReplicationMessage_Operation as Operation,
  TrustBundle,
} from '../../src/gen/isthmus/peering/v1/peering.js';
import { peerBundleSecretName, peeredUpstreamClusterName } from '../../src/mesh/names.js';
import { dialPeer } from '../../src/peering/dial.js';
import { parseToken } from '../../src/peering/token.js';
import { ResourceUrl } from '../../src/peering/stream/resources.js';
import type { Checklist } from '../../src/troubleshoot/index.js';
import { TypeUrl } from '../../src/xds/types.js';
import type { EnvoyLike } from '../helpers/envoy-like.js';
import { type MeshServer, startMeshServer } from '../helpers/mesh-server.js';
import { peerClusters } from '../helpers/peered-mesh.js';
import { cleanupProcesses } from '../helpers/process.js';
import { waitFor, withDeadline } from '../helpers/wait.js';

const evilTd = 'evil.consul';
const hour = 3_600_000;
const root = async (td: string) =>
  createRoot({ rootUri: `spiffe://${td}`, name: td, now: Date.now(), validityMs: hour });

let a: MeshServer;
let b: MeshServer;
let tdA: string;
let tdB: string;
let evilRoot: Awaited<ReturnType<typeof root>>;
let peer: TestDialer;
let web: EnvoyLike;

/** The dialer end of the peering protocol, driven by hand. */
interface TestDialer {
  /** Sends one Response and resolves with A's ACK (undefined) or NACK (its error). */
  send(
    url: ResourceUrl,
    resourceId: string,
    bytes: Uint8Array,
  ): Promise<{ code: number; message: string } | undefined>;
  close(): void;
}

async function dialAsTestPeer(): Promise<TestDialer> {
  const res = await a.api<{ PeeringToken: string }>('POST', '/v1/peering/token', {
    PeerName: 'evil',
  });
  const parsed = parseToken(res.body.PeeringToken);
  if (!parsed.ok) throw new Error(parsed.error);
  const token = parsed.value;
  const leaf = await issueLeaf(await loadSigner('e', evilRoot.certPem, evilRoot.keyPem), {
    spiffeId: `spiffe://${evilTd}/peering/server/dc/dc-evil`,
    dnsSans: [`server.dc-evil.peering.${evilTd}`],
    now: Date.now(),
    ttlMs: hour,
  });
  const target = {
    address: token.ServerAddresses[0]!,
    caPems: token.CA,
    serverName: token.ServerName,
    leaf,
  };
  const client = dialPeer(target);
  const { streamSecret } = await new Promise<{ streamSecret: string }>((resolve, reject) =>
    client.exchangeSecret(
      {
        peerId: token.PeerID,
        establishmentSecret: token.EstablishmentSecret,
        dialerRootPems: [evilRoot.certPem],
        dialerTrustDomain: evilTd,
        dialer: { partition: 'default', datacenter: 'dc-evil' },
      },
      (err: grpc.ServiceError | null, r?: { streamSecret: string }) =>
        err ? reject(err) : resolve(r!),
    ),
  );
  client.close();
  // The stream goes on a new connection, as the real dialer's does: A trusts the roots it pinned
  // for client certificates from the next TLS handshake on.
  const answers = new Map<string, (error: { code: number; message: string } | undefined) => void>();
  const open = async () => {
    const conn = dialPeer(target);
    const stream = conn.streamResources();
    const accepted = new Promise<boolean>((resolve) => {
      stream.once('data', () => resolve(true));
      stream.on('error', () => resolve(false));
    });
    stream.on('data', (msg: ReplicationMessage) => {
      if (msg.payload?.$case !== 'request' || !msg.payload.value.responseNonce) return;
      answers.get(msg.payload.value.responseNonce)?.(msg.payload.value.error);
    });
    stream.write(
      ReplicationMessage.fromPartial({
        payload: {
          $case: 'open',
          value: {
            peerId: token.PeerID,
            streamSecret,
            remote: { partition: 'default', datacenter: 'dc-evil' },
          },
        },
      }),
    );
    if (await accepted) return { conn, stream };
    conn.close();
    return undefined;
  };
  const { conn, stream } = await waitFor(open, {
    timeoutMs: 10_000,
    intervalMs: 50,
    what: "A to accept the test peer's stream",
  });
  let nonce = 0;
  return {
    send(url, resourceId, bytes) {
      const n = `evil-${++nonce}`;
      const answered = new Promise<{ code: number; message: string } | undefined>((resolve) =>
        answers.set(n, resolve),
      );
      stream.write({
        payload: {
          $case: 'response',
          value: {
            nonce: n,
            resourceUrl: url,
            resourceId,
            operation: Operation.OPERATION_UPSERT,
            resource: { typeUrl: url, value: Buffer.from(bytes) },
          },
        },
      });
      return withDeadline(answered, {
        timeoutMs: 10_000,
        what: `A's answer to ${url} ${resourceId}`,
      });
    },
    close() {
      stream.end();
      conn.close();
    },
  };
}

const bundle = (td: string, pems: string[]) =>
  TrustBundle.encode({ trustDomain: td, rootPems: pems }).finish();

/** The exporter's form of a mesh service `api` whose gateway is at `address`. */
const apiService = (address: string, spiffeTd = evilTd) =>
  ExportedService.encode({
    service: { name: 'api', namespace: 'default', partition: 'default' },
    instances: [
      {
        id: `api-sidecar-proxy:${address}:443`,
        name: 'api-sidecar-proxy',
        kind: 'connect-proxy',
        address,
        port: 443,
        meta: {},
        health: 'passing',
        destinationServiceName: 'api',
        peerMeta: {
          sni: [`api.default.default.cluster-a.external.${evilTd}`],
          spiffeId: [`spiffe://${spiffeTd}/ns/default/dc/dc-evil/svc/api`],
          protocol: 'tcp',
        },
      },
    ],
  }).finish();

const peering = async () =>
  (
    await a.api<{ PeerCAPems: string[]; StreamStatus: { LastError: string } }>(
      'GET',
      '/v1/peering/evil',
    )
  ).body;
const troubleshoot = async () =>
  (await a.api<Checklist>('GET', '/v1/troubleshoot/peering/evil')).body;
const check = (list: Checklist, name: string) => list.Checks.find((c) => c.Name === name)!;
const peerCluster = () => peeredUpstreamClusterName(evilTd, 'evil', { name: 'api' });
const endpointsOf = (e: EnvoyLike) => e.json(TypeUrl.endpoint, peerCluster());

beforeAll(async () => {
  [a, b, evilRoot] = await Promise.all([
    startMeshServer({ datacenter: 'dc-a' }),
    startMeshServer({ datacenter: 'dc-b' }),
    root(evilTd),
  ]);
  [tdA, tdB] = await Promise.all([a.trustDomain(), b.trustDomain()]);
  await peerClusters(a, b, { dialerName: 'cluster-b', acceptorName: 'cluster-a' });
  peer = await dialAsTestPeer();
  await waitFor(
    async () =>
      (await a.api<{ State: string }>('GET', '/v1/peering/evil')).body?.State === 'ACTIVE',
    { timeoutMs: 10_000, intervalMs: 20, what: "A's peering with the test dialer to be ACTIVE" },
  );
  // A well-behaved start: the test peer's bundle and one mesh service, which a sidecar of A uses.
  expect(
    await peer.send(ResourceUrl.trustBundle, evilTd, bundle(evilTd, [evilRoot.certPem])),
  ).toBeUndefined();
  const list = ExportedServiceList.encode({
    services: [{ name: 'api', namespace: 'default', partition: 'default' }],
  }).finish();
  expect(
    await peer.send(ResourceUrl.exportedServiceList, 'exported-services', list),
  ).toBeUndefined();
  expect(
    await peer.send(ResourceUrl.exportedService, 'api', apiService('198.51.100.1')),
  ).toBeUndefined();
  await a.register({
    ID: 'web',
    Name: 'web',
    Address: '127.0.0.1',
    Port: 9090,
    Connect: {
      SidecarService: {
        Proxy: {
          Upstreams: [{ DestinationName: 'api', DestinationPeer: 'evil', LocalBindPort: 19001 }],
        },
      },
    },
  });
  web = await a.connect('web-sidecar-proxy');
  await web.until(
    (e) =>
      e.get(TypeUrl.secret, peerBundleSecretName('evil')) !== undefined &&
      endpointsOf(e).includes('198.51.100.1'),
    "web's upstream to the test peer's api, with its bundle",
  );
}, 60_000);

afterAll(async () => {
  peer?.close();
  await Promise.all([a?.close(), b?.close()]);
  await cleanupProcesses();
});

describe('a peer is held to its word', () => {
  it('bundles for a trust domain its roots do not certify, for ours, or for another peer’s are NACKed, recorded, shown, and change nothing', async () => {
    const bundleSecret = web.json(TypeUrl.secret, peerBundleSecretName('evil'));
    expect(bundleSecret).toContain(JSON.stringify(evilRoot.certPem).slice(1, 60));
    const from = web.log.length;
    const [otherRoot, forgedA, forgedB] = await Promise.all([
      root('other.consul'),
      root(tdA),
      root(tdB),
    ]);

    const cases: [string, Uint8Array, RegExp][] = [
      [
        evilTd,
        bundle(evilTd, [otherRoot.certPem]),
        /^root_pems\[0\]: certifies spiffe:\/\/other\.consul, not the claimed trust domain evil\.consul$/,
      ],
      [
        tdA,
        bundle(tdA, [forgedA.certPem]),
        /^trust_domain: the peer established this peering as evil\.consul, not "[^"]+" \(this cluster's own\)$/,
      ],
      [
        tdB,
        bundle(tdB, [forgedB.certPem]),
        /^trust_domain: the peer established this peering as evil\.consul, not "[^"]+" \(the trust domain of peering "cluster-b"\)$/,
      ],
    ];
    for (const [id, bytes, reason] of cases) {
      const nack = await peer.send(ResourceUrl.trustBundle, id, bytes);
      expect(nack?.code, id).toBe(3); // INVALID_ARGUMENT
      expect(nack?.message).toMatch(reason);
      const record = await peering();
      expect(record.StreamStatus.LastError).toBe(
        `rejected the peer's trust-bundle: ${nack?.message}`,
      );
      expect(record.PeerCAPems).toEqual([evilRoot.certPem]);
      const caCheck = check(await troubleshoot(), 'peer CA present');
      expect(caCheck.OK).toBe(false);
      expect(caCheck.Detail).toContain(nack!.message);
      expect(caCheck.Fix).toMatch(/URI SAN spiffe:\/\/<its trust domain>/);
    }

    // A service whose SPIFFE ID lies in B's trust domain: NACKed, never stored.
    const nack = await peer.send(
      ResourceUrl.exportedService,
      'api',
      apiService('198.51.100.66', tdB),
    );
    expect(nack?.code).toBe(3);
    expect(nack?.message).toMatch(
      /^instances\[0\]\.peer_meta\.spiffe_id\[0\]: "spiffe:\/\/[^"]+" is outside the peer's trust domain evil\.consul$/,
    );
    const importsCheck = check(await troubleshoot(), 'imports');
    expect(importsCheck.OK).toBe(false);
    expect(importsCheck.Detail).toContain('the service api that evil replicated was rejected');

    // Barrier: a valid change after the refused ones reaches the sidecar, so they had their chance.
    expect(
      await peer.send(ResourceUrl.exportedService, 'api', apiService('198.51.100.2')),
    ).toBeUndefined();
    await web.until((e) => endpointsOf(e).includes('198.51.100.2'), 'the valid change');
    expect(endpointsOf(web)).not.toContain('198.51.100.66');
    expect(web.json(TypeUrl.secret, peerBundleSecretName('evil'))).toBe(bundleSecret);
    const bundlePushes = web.log
      .slice(from)
      .filter(
        (r) => r.typeUrl === TypeUrl.secret && r.names.includes(peerBundleSecretName('evil')),
      );
    expect(bundlePushes).toEqual([]);
    // The accepted service cleared its ✗; the refused bundle's stays until a good one arrives.
    expect(check(await troubleshoot(), 'imports').OK).toBe(true);
    expect(check(await troubleshoot(), 'peer CA present').OK).toBe(false);
    expect(
      await peer.send(ResourceUrl.trustBundle, evilTd, bundle(evilTd, [evilRoot.certPem])),
    ).toBeUndefined();
    expect(check(await troubleshoot(), 'peer CA present').OK).toBe(true);
  });

  it('establish refuses a token whose roots do not certify its server name, or that claims our own trust domain', async () => {
    const res = await a.api<{ PeeringToken: string }>('POST', '/v1/peering/token', {
      PeerName: 'cluster-b-2',
    });
    const parsed = parseToken(res.body.PeeringToken);
    if (!parsed.ok) throw new Error(parsed.error);
    const forgedB = await root(tdB);
    const token = (t: object) =>
      Buffer.from(JSON.stringify({ ...parsed.value, ...t })).toString('base64');
    const lying = await b.api<{ error: string }>('POST', '/v1/peering/establish', {
      PeerName: 'liar',
      PeeringToken: token({ CA: [evilRoot.certPem] }),
    });
    expect(lying.status).toBe(400);
    expect(lying.body.error).toMatch(
      /PeeringToken\.CA\[0\]: certifies spiffe:\/\/evil\.consul, not the claimed trust domain .*establish again with a new token/,
    );
    const ours = await b.api<{ error: string }>('POST', '/v1/peering/establish', {
      PeerName: 'mirror',
      PeeringToken: token({ CA: [forgedB.certPem], ServerName: `server.dc-x.peering.${tdB}` }),
    });
    expect(ours.status).toBe(400);
    expect(ours.body.error).toContain(
      `PeeringToken.ServerName: ${tdB} is this cluster's own trust domain`,
    );
    expect((await b.api('GET', '/v1/peering/liar')).status).toBe(404);
    expect((await b.api('GET', '/v1/peering/mirror')).status).toBe(404);
  });
});
