/**
 * Establishing a peering between two real servers in this process (LMDB stores in temp dirs, HTTP,
 * and the TLS peering port on 127.0.0.1:0): tokens, ExchangeSecret over real TLS, every refusal,
 * concurrency, delete and restart.
 */
import { X509Certificate } from 'node:crypto';
import { Writable } from 'node:stream';
import tls, { type PeerCertificate } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createRoot } from '../../src/ca/x509.js';
import { loadServerConfig } from '../../src/config/index.js';
import { createLogger } from '../../src/log.js';
import { peeringServerName, peeringServerSpiffeId } from '../../src/mesh/names.js';
import { checkClientCertificate } from '../../src/peering/client-cert.js';
import { dialPeer } from '../../src/peering/dial.js';
import { peeringIdentity } from '../../src/peering/server.js';
import { type PeeringToken, encodeToken, parseToken } from '../../src/peering/token.js';
import { type RunningServer, startServer } from '../../src/server.js';
import type { PeeringJson } from '../../src/api/peering-routes.js';
import { cleanupProcesses, runCli, tempDir } from '../helpers/process.js';
import { waitFor, withDeadline } from '../helpers/wait.js';

interface Cluster {
  readonly server: RunningServer;
  readonly dataDir: string;
  readonly datacenter: string;
  readonly logs: string[];
  api<T = any>(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: T; text: string }>;
}

const running: Cluster[] = [];

async function startCluster(
  datacenter: string,
  dataDir = tempDir('isthmus-peer-'),
  flags: Record<string, string> = {},
): Promise<Cluster> {
  const logs: string[] = [];
  const sink = new Writable({ write: (chunk, _enc, done) => (logs.push(String(chunk)), done()) });
  const config = loadServerConfig({
    flags: {
      dataDir,
      datacenter,
      httpAddr: '127.0.0.1:0',
      xdsAddr: '127.0.0.1:0',
      peeringAddr: '127.0.0.1:0',
      logLevel: 'debug',
      ...flags,
    },
    env: {},
  });
  const server = await startServer(config, { logger: createLogger('debug', sink) });
  const api = async (method: string, path: string, body?: unknown) => {
    const init: RequestInit = { method };
    if (body !== undefined) init.body = typeof body === 'string' ? body : JSON.stringify(body);
    const res = await fetch(`http://127.0.0.1:${server.httpPort}${path}`, init);
    const text = await res.text();
    const json = res.headers.get('content-type')?.includes('application/json') && text !== '';
    return { status: res.status, body: json ? JSON.parse(text) : undefined, text };
  };
  const cluster = { server, dataDir, datacenter, logs, api };
  running.push(cluster);
  return cluster;
}

async function stopCluster(c: Cluster): Promise<void> {
  running.splice(running.indexOf(c), 1);
  await c.server.stop();
}

async function tokenFor(
  a: Cluster,
  peerName: string,
  extra: Record<string, unknown> = {},
): Promise<string> {
  const res = await a.api<{ PeeringToken: string }>('POST', '/v1/peering/token', {
    PeerName: peerName,
    ...extra,
  });
  expect(res.status, res.text).toBe(200);
  return res.body.PeeringToken;
}

const establish = (b: Cluster, name: string, token: string) =>
  b.api('POST', '/v1/peering/establish', { PeerName: name, PeeringToken: token });
const decoded = (token: string): PeeringToken => {
  const parsed = parseToken(token);
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.value;
};
const rootsOf = (c: Cluster) => c.server.ca.roots().roots.map((r) => r.certPem);
const b64 = (text: string) => Buffer.from(text).toString('base64');

let a: Cluster;
let b: Cluster;

beforeEach(async () => {
  [a, b] = await Promise.all([startCluster('dc-a'), startCluster('dc-b')]);
});

afterEach(async () => {
  await Promise.all(running.splice(0).map((c) => c.server.stop()));
});

afterAll(cleanupProcesses);

describe('peering establish between two servers', () => {
  it("A generates a token for cluster-b, B establishes: A pins B's roots, B holds A's server name and CA", async () => {
    const token = await tokenFor(a, 'cluster-b', { Meta: { env: 'test' } });
    const t = decoded(token);
    expect(t.ServerName).toBe(peeringServerName(a.server.ca.trustDomain, 'dc-a'));
    expect(t.ServerAddresses).toEqual([`127.0.0.1:${a.server.peeringPort}`]);
    expect(t.CA).toEqual(rootsOf(a));
    expect(t.Remote).toEqual({ Partition: 'default', Datacenter: 'dc-a' });

    const pending = (await a.api<PeeringJson>('GET', '/v1/peering/cluster-b')).body;
    expect(pending).toMatchObject({
      Name: 'cluster-b',
      State: 'PENDING',
      ID: t.PeerID,
      PeerCAPems: [],
      Meta: { env: 'test' },
      Healthy: false,
    });

    const res = await establish(b, 'cluster-a', token);
    expect(res.status, res.text).toBe(200);
    expect(res.body).toEqual({});

    const onA = (await a.api<PeeringJson>('GET', '/v1/peering/cluster-b')).body;
    expect(onA).toMatchObject({
      ID: t.PeerID,
      State: 'PENDING',
      PeerCAPems: rootsOf(b),
      Remote: { Partition: 'default', Datacenter: 'dc-b' },
    });
    const onB = (await b.api<PeeringJson>('GET', '/v1/peering/cluster-a')).body;
    expect(onB).toMatchObject({
      Name: 'cluster-a',
      State: 'ESTABLISHING',
      PeerID: t.PeerID,
      PeerServerName: t.ServerName,
      PeerServerAddresses: t.ServerAddresses,
      PeerCAPems: rootsOf(a),
      Remote: { Partition: 'default', Datacenter: 'dc-a' },
      Healthy: false,
      StreamStatus: {
        ImportedServices: [],
        ExportedServices: [],
        LastHeartbeat: null,
        LastError: '',
      },
    });
    expect(onB.ID).not.toBe(t.PeerID);
    expect(b.server.peerings.read('cluster-a')?.peerTrustDomain).toBe(a.server.ca.trustDomain);
    expect(a.server.peerings.read('cluster-b')?.peerTrustDomain).toBe(b.server.ca.trustDomain);

    // Secrets never leave the servers: not in API answers, not in logs.
    const streamSecret = await b.server.peerings.streamSecretOf('cluster-a');
    const texts = [
      (await a.api('GET', '/v1/peerings')).text,
      (await b.api('GET', '/v1/peerings')).text,
      ...a.logs,
      ...b.logs,
    ].join('\n');
    expect(texts).not.toContain(t.EstablishmentSecret);
    expect(texts).not.toContain(streamSecret);
    expect(texts).not.toContain(token);
    expect(texts).not.toContain('PRIVATE KEY');
    expect(a.logs.join('')).toContain('peering secret exchanged');
  });

  it('a reused token gets 403 "generate a new token"; a regenerated one works and the old one is dead', async () => {
    const first = await tokenFor(a, 'cluster-b');
    expect((await establish(b, 'cluster-a', first)).status).toBe(200);
    const again = await establish(b, 'cluster-a', first);
    expect(again.status).toBe(403);
    expect(again.body.error).toMatch(/generate a new token/);

    const unused = await tokenFor(a, 'other');
    const fresh = await tokenFor(a, 'other');
    const stale = await establish(b, 'other-a', unused);
    expect(stale.status).toBe(403);
    expect(stale.body.error).toMatch(
      /establishment secret already used or unknown: generate a new token/,
    );
    expect(b.server.peerings.read('other-a')).toBeUndefined();
    expect((await establish(b, 'other-a', fresh)).status).toBe(200);
  });

  it('20 concurrent establishes with one token: exactly one succeeds', async () => {
    const token = await tokenFor(a, 'cluster-b');
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => establish(b, `cluster-a-${i}`, token)),
    );
    const statuses = results.map((r) => r.status).sort();
    expect(statuses.filter((s) => s === 200)).toHaveLength(1);
    expect(statuses.filter((s) => s === 403)).toHaveLength(19);
    expect(b.server.peerings.list().map((p) => p.name)).toHaveLength(1);
  });

  it('every bad token gets a 400 naming the problem, and nothing is stored', async () => {
    const good = decoded(await tokenFor(a, 'cluster-b'));
    const ownName = peeringServerName(b.server.ca.trustDomain, 'dc-b');
    const cases: [string, string, RegExp][] = [
      ['not base64', '***not base64***', /not base64/],
      ['not JSON', b64('hello, not json'), /not JSON/],
      [
        'missing fields',
        b64(JSON.stringify({ CA: good.CA })),
        /ServerAddresses: missing.*ServerName: missing.*PeerID: missing.*EstablishmentSecret: missing/,
      ],
      [
        'no CA',
        encodeToken({ ...good, CA: [] }),
        /CA: missing \(no CA certificates: isthmus never peers without TLS\)/,
      ],
      [
        'CA does not parse',
        encodeToken({
          ...good,
          CA: ['-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'],
        }),
        /CA\[0\]: does not parse as an X\.509 certificate/,
      ],
      [
        'address not host:port',
        encodeToken({ ...good, ServerAddresses: ['127.0.0.1'] }),
        /ServerAddresses\[0\]: "127\.0\.0\.1" is not host:port/,
      ],
      [
        'our own server name',
        encodeToken({ ...good, ServerName: ownName }),
        new RegExp(`ServerName ${ownName.replace(/\./g, '\\.')} is this cluster's own`),
      ],
    ];
    for (const [what, token, message] of cases) {
      const res = await establish(b, 'cluster-a', token);
      expect(res.status, what).toBe(400);
      expect(res.body.error, what).toMatch(/^invalid peering token: /);
      expect(res.body.error, what).toMatch(message);
      expect(res.body.field, what).toBe('PeeringToken');
    }
    expect((await b.api('GET', '/v1/peerings')).body).toEqual([]);
    // None of them spent the secret.
    expect((await establish(b, 'cluster-a', encodeToken(good))).status).toBe(200);
  });

  it("TLS verifies the acceptor: a token whose CA is not the acceptor's fails without spending the secret", async () => {
    const good = decoded(await tokenFor(a, 'cluster-b'));
    // A root of its own that claims A's trust domain: it passes the claims check, not TLS.
    const forged = await createRoot({
      rootUri: `spiffe://${a.server.ca.trustDomain}`,
      name: 'forged',
      now: Date.now(),
      validityMs: 3_600_000,
    });
    const wrongCa = await establish(b, 'cluster-a', encodeToken({ ...good, CA: [forged.certPem] }));
    expect(wrongCa.status).toBe(503);
    expect(wrongCa.body.error).toMatch(
      /cannot exchange the peering secret with server\.dc-a\.peering\./,
    );
    expect(wrongCa.body.error, 'says what to do about it').toMatch(/generate a new token there/);
    const wrongName = await establish(
      b,
      'cluster-a',
      encodeToken({ ...good, ServerName: `server.dc-x.peering.${a.server.ca.trustDomain}` }),
    );
    expect(wrongName.status).toBe(503);
    expect((await establish(b, 'cluster-a', encodeToken(good))).status).toBe(200);
  });

  it('names the wrong request fields (400) and refuses a name taken by the other role (409)', async () => {
    const bad = await a.api('POST', '/v1/peering/token', { PeerName: 'Not_A_Name' });
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ field: 'PeerName' });
    expect(
      (
        await a.api('POST', '/v1/peering/token', {
          PeerName: 'x',
          ServerExternalAddresses: ['nope'],
        })
      ).body.error,
    ).toMatch(/ServerExternalAddresses\[0\]/);
    expect((await b.api('POST', '/v1/peering/establish', { PeerName: 'x' })).body).toMatchObject({
      field: 'PeeringToken',
    });

    const token = await tokenFor(a, 'cluster-b');
    expect((await establish(b, 'cluster-a', token)).status).toBe(200);
    const conflict = await b.api('POST', '/v1/peering/token', { PeerName: 'cluster-a' });
    expect(conflict.status).toBe(409);
    const reverse = await establish(a, 'cluster-b', await tokenFor(b, 'someone'));
    expect(reverse.status).toBe(409);
  });

  it('ServerExternalAddresses go into the token and are what the dialer dials', async () => {
    const token = decoded(
      await tokenFor(a, 'cluster-b', {
        ServerExternalAddresses: [`localhost:${a.server.peeringPort}`],
      }),
    );
    expect(token.ServerAddresses).toEqual([`localhost:${a.server.peeringPort}`]);
    expect(token.ManualServerAddresses).toEqual([`localhost:${a.server.peeringPort}`]);
    expect((await establish(b, 'cluster-a', encodeToken(token))).status).toBe(200);
    expect(b.server.peerings.read('cluster-a')?.peerServerAddresses).toEqual([
      `localhost:${a.server.peeringPort}`,
    ]);
    // Once the stream is up, the acceptor's replicated addresses do not replace the operator's.
    await waitFor(() => b.server.peerings.read('cluster-a')?.state === 'ACTIVE', {
      timeoutMs: 10_000,
      what: 'B ACTIVE',
    });
    expect(b.server.peerings.read('cluster-a')?.peerServerAddresses).toEqual([
      `localhost:${a.server.peeringPort}`,
    ]);
  });

  it('the peering port: INVALID_ARGUMENT for missing fields, PERMISSION_DENIED for a bad secret; a stream with a wrong stream secret is refused', async () => {
    const t = decoded(await tokenFor(a, 'cluster-b'));
    const client = dialPeer({
      address: t.ServerAddresses[0]!,
      caPems: t.CA,
      serverName: t.ServerName,
    });
    const call = (req: object) =>
      new Promise<grpc.ServiceError | undefined>((resolve) =>
        client.exchangeSecret(req as never, (err) => resolve(err ?? undefined)),
      );
    try {
      const base = {
        peerId: t.PeerID,
        establishmentSecret: t.EstablishmentSecret,
        dialerRootPems: rootsOf(b),
        dialerTrustDomain: b.server.ca.trustDomain,
      };
      expect(await call({ ...base, peerId: '' })).toMatchObject({
        code: grpc.status.INVALID_ARGUMENT,
        details: 'peer_id: missing',
      });
      expect(await call({ ...base, dialerRootPems: [] })).toMatchObject({
        code: grpc.status.INVALID_ARGUMENT,
        details: 'dialer_root_pems: missing',
      });
      expect(await call({ ...base, dialerRootPems: ['nope'] })).toMatchObject({
        code: grpc.status.INVALID_ARGUMENT,
      });
      // A trust domain B's roots do not certify, or A's own: refused, the secret kept (issue 18).
      expect(await call({ ...base, dialerTrustDomain: 'b.consul' })).toMatchObject({
        code: grpc.status.INVALID_ARGUMENT,
        details: expect.stringMatching(
          /^dialer_root_pems\[0\]: certifies spiffe:\/\/\S+\.consul, not the claimed trust domain b\.consul \(the peer's CA roots must carry/,
        ),
      });
      expect(await call({ ...base, dialerTrustDomain: a.server.ca.trustDomain })).toMatchObject({
        code: grpc.status.INVALID_ARGUMENT,
        details: expect.stringContaining(
          `dialer_trust_domain: ${a.server.ca.trustDomain} is this cluster's own trust domain`,
        ),
      });
      expect(await call({ ...base, establishmentSecret: 'wrong' })).toMatchObject({
        code: grpc.status.PERMISSION_DENIED,
      });
      expect(await call({ ...base, peerId: 'unknown' })).toMatchObject({
        code: grpc.status.PERMISSION_DENIED,
      });
      // The failed attempts did not spend it.
      expect(await call(base)).toBeUndefined();
      expect(await call(base)).toMatchObject({
        code: grpc.status.PERMISSION_DENIED,
        details: 'establishment secret already used or unknown: generate a new token',
      });

      const stream = client.streamResources();
      const status = withDeadline(
        new Promise<grpc.StatusObject>((resolve) => {
          stream.on('status', resolve);
          stream.on('error', () => undefined);
          stream.on('data', () => undefined);
        }),
        { timeoutMs: 5_000, what: 'the refused stream to end' },
      );
      stream.write({
        payload: { $case: 'open', value: { peerId: t.PeerID, streamSecret: 'wrong' } },
      });
      expect((await status).code).toBe(grpc.status.PERMISSION_DENIED);
    } finally {
      client.close();
    }
  });

  it("a stream handler plugged in later sees the dialer's client certificate, which chains to the roots A pinned", async () => {
    const token = await tokenFor(a, 'cluster-b');
    expect((await establish(b, 'cluster-a', token)).status).toBe(200);
    const seen = new Promise<PeerCertificate | undefined>((resolve) => {
      a.server.peeringServer.setStreamHandler((call) => {
        resolve(call.getAuthContext().sslPeerCertificate);
        call.end();
      });
    });
    const dialer = b.server.peerings.read('cluster-a')!;
    const leaf = await b.server.ca.leaf(peeringIdentity(b.server.ca, 'dc-b'));
    const client = dialPeer({
      address: dialer.peerServerAddresses[0]!,
      caPems: dialer.peerCaPems,
      serverName: dialer.peerServerName,
      leaf,
    });
    try {
      const stream = client.streamResources();
      stream.on('error', () => undefined);
      stream.on('data', () => undefined);
      const cert = await withDeadline(seen, {
        timeoutMs: 5_000,
        what: 'the stream handler to be called',
      });
      const pinned = a.server.peerings.read('cluster-b')!.peerCaPems;
      expect(checkClientCertificate(cert, pinned)).toEqual({
        ok: true,
        value: [peeringServerSpiffeId(b.server.ca.trustDomain, 'dc-b')],
      });
      expect(checkClientCertificate(cert, rootsOf(a))).toMatchObject({ ok: false });
      stream.end();
    } finally {
      client.close();
    }
  });

  it('delete removes the peering (404 after); deleting an unknown one is a 404', async () => {
    await tokenFor(a, 'cluster-b');
    expect((await a.api('DELETE', '/v1/peering/cluster-b')).status).toBe(200);
    await waitFor(async () => (await a.api('GET', '/v1/peering/cluster-b')).status === 404, {
      timeoutMs: 5_000,
      what: 'the deleted peering to be gone',
    });
    const missing = await a.api('DELETE', '/v1/peering/nobody');
    expect(missing.status).toBe(404);
    expect(missing.body.error).toBe('peering "nobody" not found');
    expect((await a.api('GET', '/v1/peering/nobody')).status).toBe(404);
  });

  it('a restart of A keeps the records, the pinned roots and the spent secret', async () => {
    const token = await tokenFor(a, 'cluster-b');
    expect((await establish(b, 'cluster-a', token)).status).toBe(200);
    const before = (await a.api<PeeringJson>('GET', '/v1/peering/cluster-b')).body;
    await stopCluster(a);
    a = await startCluster('dc-a', a.dataDir);
    const after = (await a.api<PeeringJson>('GET', '/v1/peering/cluster-b')).body;
    // State and StreamStatus move with the replication stream B keeps dialing; the record stays.
    const lasting = (p: PeeringJson) => ({
      ID: p.ID,
      Name: p.Name,
      PeerCAPems: p.PeerCAPems,
      Meta: p.Meta,
      Remote: p.Remote,
      CreateIndex: p.CreateIndex,
    });
    expect(lasting(after)).toEqual(lasting(before));
    expect(after.PeerCAPems).toEqual(rootsOf(b));
    // The token's address changed with the restart (port 0): point it at the new port.
    const moved = encodeToken({
      ...decoded(token),
      ServerAddresses: [`127.0.0.1:${a.server.peeringPort}`],
    });
    const reused = await establish(b, 'cluster-a-again', moved);
    expect(reused.status).toBe(403);
  });

  it("GET /v1/exported-services resolves the config entry (wildcard included) in Consul's shape, and /metrics has the peering gauges", async () => {
    for (const name of ['web', 'api', 'db'])
      expect(
        (await a.api('PUT', '/v1/agent/service/register', { Name: name, Port: 8080 })).status,
      ).toBe(200);
    const entry = {
      Kind: 'exported-services',
      Name: 'default',
      Services: [
        { Name: 'web', Consumers: [{ Peer: 'cluster-b' }] },
        { Name: '*', Consumers: [{ Peer: 'cluster-c' }] },
      ],
    };
    expect((await a.api('PUT', '/v1/config', entry)).status).toBe(200);
    expect((await a.api('GET', '/v1/exported-services')).body).toEqual([
      { Service: 'api', Consumers: { Peers: ['cluster-c'] } },
      { Service: 'db', Consumers: { Peers: ['cluster-c'] } },
      { Service: 'web', Consumers: { Peers: ['cluster-b', 'cluster-c'] } },
    ]);

    await tokenFor(a, 'cluster-b');
    // An unused token is not a broken peering: no series while it is PENDING.
    expect((await a.api('GET', '/metrics')).text).not.toMatch(
      /isthmus_peering_\w+\{peer_name="cluster-b"\}/,
    );
    await a.server.peerings.setStreamStatus('cluster-b', {
      exportedServices: ['web'],
      importedServices: ['x', 'y'],
    });
    await a.server.peerings.setState('cluster-b', 'FAILING');
    const metrics = (await a.api('GET', '/metrics')).text;
    expect(metrics).toContain('isthmus_peering_healthy{peer_name="cluster-b"} 0');
    expect(metrics).toContain('isthmus_peering_exported_services{peer_name="cluster-b"} 1');
    expect(metrics).toContain('isthmus_peering_imported_services{peer_name="cluster-b"} 2');
    expect(metrics).not.toMatch(/isthmus_peering_last_heartbeat_age_seconds\{/);

    const heartbeat = new Date(Date.now() - 5_000).toISOString();
    await a.server.peerings.setStreamStatus('cluster-b', { lastHeartbeat: heartbeat });
    await a.server.peerings.setState('cluster-b', 'ACTIVE');
    expect((await a.api<PeeringJson>('GET', '/v1/peering/cluster-b')).body.Healthy).toBe(true);
    const after = (await a.api('GET', '/metrics')).text;
    expect(after).toContain('isthmus_peering_healthy{peer_name="cluster-b"} 1');
    expect(
      Number(
        /isthmus_peering_last_heartbeat_age_seconds\{peer_name="cluster-b"\} ([\d.]+)/.exec(
          after,
        )?.[1],
      ),
    ).toBeGreaterThanOrEqual(5);
  });
});

describe("the peering port's certificate", () => {
  /** The certificate the peering port serves, over a real TLS handshake that trusts `caPems`. */
  function servedCertificate(c: Cluster, caPems: readonly string[]): Promise<tls.PeerCertificate> {
    const servername = peeringServerName(c.server.ca.trustDomain, c.datacenter);
    return new Promise((resolve, reject) => {
      const socket = tls.connect(
        {
          host: '127.0.0.1',
          port: c.server.peeringPort,
          servername,
          ca: [...caPems],
          ALPNProtocols: ['h2'],
        },
        () => {
          resolve(socket.getPeerCertificate());
          socket.end();
        },
      );
      socket.on('error', reject);
    });
  }

  it('is a CA leaf for server.<dc>.peering.<td> with the peering SPIFFE ID, swapped without a restart when the CA rotates', async () => {
    const rotating = await startCluster('dc-r', undefined, { caRotationPhaseMs: '300' });
    const td = rotating.server.ca.trustDomain;
    const first = await servedCertificate(rotating, rootsOf(rotating));
    expect(first.subjectaltname).toBe(
      `URI:${peeringServerSpiffeId(td, 'dc-r')}, DNS:${peeringServerName(td, 'dc-r')}`,
    );
    const oldRoot = rotating.server.ca.roots().activeRootId;
    await rotating.server.ca.rotate();
    const renewed = await waitFor(
      async () => {
        const cert = await servedCertificate(rotating, rootsOf(rotating));
        return cert.serialNumber !== first.serialNumber && cert;
      },
      { timeoutMs: 10_000, what: 'the peering port to serve a re-issued certificate' },
    );
    expect(rotating.server.ca.roots().activeRootId).not.toBe(oldRoot);
    const newRoot = rotating.server.ca.roots().roots.find((r) => r.active)!;
    expect(new X509Certificate(renewed.raw).checkIssued(new X509Certificate(newRoot.certPem))).toBe(
      true,
    );
    // And establishing against the rotated cluster works with a fresh token.
    const token = await tokenFor(rotating, 'cluster-b');
    expect((await establish(b, 'cluster-r', token)).status).toBe(200);
  });
});

describe('isthmus peering CLI', () => {
  const cli = (c: Cluster, args: string[]) =>
    runCli(['peering', ...args, '--http-addr', `127.0.0.1:${c.server.httpPort}`]);

  it('generate-token prints the token and the next command; establish, list, read, exported-services, delete', async () => {
    const gen = await cli(a, ['generate-token', '--name', 'cluster-b', '--meta', 'team=core']);
    expect(gen.code, gen.stderr).toBe(0);
    const token = gen.stdout.trim();
    expect(parseToken(token).ok).toBe(true);
    expect(gen.stderr).toBe(
      `Next, on the other cluster run:\n  isthmus peering establish --name dc-a --peering-token ${token}\n`,
    );

    const est = await cli(b, ['establish', '--name', 'dc-a', '--peering-token', token]);
    expect(est.code, est.stderr).toBe(0);
    expect(est.stdout).toMatch(
      /^Peering "dc-a" established with server\.dc-a\.peering\..*; state (ESTABLISHING|ACTIVE)/,
    );

    const list = await cli(b, ['list']);
    expect(list.stdout.split('\n')[0]).toMatch(
      /^NAME\s+STATE\s+HEALTHY\s+REMOTE DC\s+IMPORTED\s+EXPORTED$/,
    );
    // The dialer starts its stream at once: ESTABLISHING until the acceptor answers, then ACTIVE.
    expect(list.stdout).toMatch(/dc-a\s+(ESTABLISHING\s+no|ACTIVE\s+yes)\s+dc-a\s+0\s+0/);
    const json = await cli(a, ['read', '--name', 'cluster-b', '--format', 'json']);
    expect(JSON.parse(json.stdout)).toMatchObject({
      Name: 'cluster-b',
      Meta: { team: 'core' },
      PeerCAPems: rootsOf(b),
    });
    const read = await cli(a, ['read', '--name', 'cluster-b']);
    expect(read.stdout).toMatch(/^Name:\s+cluster-b$/m);
    expect(read.stdout).toMatch(/^Peer CA roots:\s+1$/m);
    expect((await cli(a, ['exported-services'])).stdout).toBe('No exported services.');

    const reused = await cli(b, ['establish', '--name', 'again', '--peering-token', token]);
    expect(reused.code).toBe(1);
    expect(reused.stderr).toMatch(
      /^isthmus: the peer refused the token: establishment secret already used or unknown: generate a new token \(HTTP 403\)\n$/,
    );
    const badToken = await cli(b, ['establish', '--name', 'again', '--peering-token', 'zzz']);
    expect(badToken.code).toBe(1);
    expect(badToken.stderr).toMatch(
      /^isthmus: PeeringToken: invalid peering token: not base64.*\(HTTP 400\)\n$/,
    );
    const badMeta = await cli(a, ['generate-token', '--name', 'x', '--meta', 'novalue']);
    expect(badMeta.code).toBe(2);
    expect(badMeta.stderr.split('\n')).toHaveLength(2);

    const del = await cli(a, ['delete', '--name', 'cluster-b']);
    expect(del.stdout).toBe('Peering "cluster-b" is being deleted');
    const missing = await cli(a, ['read', '--name', 'nobody']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe('isthmus: peering "nobody" not found (HTTP 404)\n');
  });
});
