/**
 * No secret reaches a log line (issue 6): two real `isthmus server` processes at --log-level debug
 * with --http-token go through a full peering lifecycle driven like a user drives it (token,
 * establish, export, sidecars and mesh gateways, proxy tokens and Delta proxies that receive their
 * leaf keys over SDS, a CA rotation, a wrong proxy token and a wrong HTTP token, a regenerated
 * token and re-establishment, deletion). Then every token, secret and private key seen on the way
 * is looked for in every stdout and stderr line of both processes: none may appear.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { TypeUrl } from '../../src/xds/types.js';
import { EnvoyLike } from '../helpers/envoy-like.js';
import { adsClient } from '../helpers/fake-envoy.js';
import { startMeshProcess, type MeshProcess } from '../helpers/mesh-server.js';
import { exportEntry } from '../helpers/peered-mesh.js';
import { cleanupProcesses } from '../helpers/process.js';
import { waitFor, withDeadline } from '../helpers/wait.js';

interface Secret {
  readonly what: string;
  readonly value: string;
}

const secrets: Secret[] = [];
const keep = (what: string, value: string | undefined): void => {
  if (!value) throw new Error(`${what}: no value to look for`);
  secrets.push({ what, value });
};

/** Every PEM private key in a resource (wherever the Secret message holds it). */
function privateKeysIn(value: unknown, found: string[] = []): string[] {
  if (typeof value === 'string' && value.includes('PRIVATE KEY-----')) found.push(value);
  else if (Array.isArray(value)) for (const v of value) privateKeysIn(v, found);
  else if (typeof value === 'object' && value !== null)
    for (const v of Object.values(value)) privateKeysIn(v, found);
  return found;
}

/** The SDS map of a fake Envoy, recording every secret ever received (a rotation replaces them). */
class RecordingMap extends Map<string, Record<string, unknown>> {
  readonly pems = new Set<string>();
  override set(name: string, message: Record<string, unknown>): this {
    for (const pem of privateKeysIn(message)) this.pems.add(pem);
    return super.set(name, message);
  }
}

/**
 * Looks for the whole PEM and for each base64 body line of it (a log would show it JSON-escaped).
 */
function keepPem(what: string, pem: string): void {
  keep(what, pem.trim());
  pem
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length >= 16 && !l.startsWith('-----'))
    .forEach((line, i) => keep(`${what} body line ${i + 1}`, line));
}

/** The CA root private keys on disk (`<dataDir>/ca/*.key`), by file name. */
function caKeyFiles(dataDir: string, into: Map<string, string>): void {
  const dir = join(dataDir, 'ca');
  if (!existsSync(dir)) return;
  for (const name of readdirSync(dir).filter((n) => n.endsWith('.key')))
    into.set(`${dataDir}:${name}`, readFileSync(join(dir, name), 'utf8'));
}

/**
 * The dialer's stream secrets, read from the raw LMDB file (JSON values; a running server's store
 * cannot be opened twice, and a deleted peering's freed pages often still hold them).
 */
function streamSecretsIn(dataDir: string): string[] {
  const file = join(dataDir, 'data.mdb');
  if (!existsSync(file)) return [];
  const text = readFileSync(file).toString('latin1');
  return [...text.matchAll(/"streamSecret":"([A-Za-z0-9_-]{20,})"/g)].map((m) => m[1]!);
}

const httpTokenA = `a-http-${randomBytes(18).toString('base64url')}`;
const httpTokenB = `b-http-${randomBytes(18).toString('base64url')}`;
const flags = { logLevel: 'debug', caRotationPhaseMs: '300' };
const envoys: EnvoyLike[] = [];
const clients: grpc.Client[] = [];
let a: MeshProcess | undefined;
let b: MeshProcess | undefined;

afterAll(async () => {
  for (const e of envoys) e.close();
  for (const c of clients) c.close();
  await Promise.all([a?.close(), b?.close()]);
  await cleanupProcesses();
});

/** A Delta proxy authenticated with a token we hold, its SDS recorded. */
async function proxy(
  node: MeshProcess,
  proxyId: string,
  label: string,
): Promise<{ envoy: EnvoyLike; keys: Set<string> }> {
  const secretId = await node.token(proxyId);
  keep(`${label} proxy token SecretID of ${proxyId}`, secretId);
  const md = new grpc.Metadata();
  md.set('x-isthmus-token', secretId);
  const client = adsClient(`127.0.0.1:${node.proc.xdsPort}`, node.xdsTls);
  clients.push(client);
  const envoy = new EnvoyLike(client, proxyId, md);
  const recording = new RecordingMap();
  envoy.config.set(TypeUrl.secret, recording);
  envoys.push(envoy);
  return { envoy, keys: recording.pems };
}

function withSidecar(name: string, port: number, upstreams: unknown[] = []) {
  return {
    ID: name,
    Name: name,
    Address: '127.0.0.1',
    Port: port,
    Check: { TTL: '600s', Status: 'passing' },
    Connect: { SidecarService: { Proxy: { Upstreams: upstreams } } },
  };
}

const gateway = (id: string, port: number, wan: string) => ({
  ID: id,
  Name: 'mesh-gateway',
  Kind: 'mesh-gateway',
  Address: '127.0.0.1',
  Port: port,
  TaggedAddresses: { lan: { Address: '127.0.0.1', Port: port }, wan: { Address: wan, Port: 443 } },
});

async function ok<T>(node: MeshProcess, method: string, path: string, body?: unknown): Promise<T> {
  const res = await node.api<T>(method, path, body);
  if (res.status !== 200)
    throw new Error(`${method} ${path} → ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

/** The token's PeerID: an identifier, not a secret (logged as `peeringId`). */
const peerIds: string[] = [];

/**
 * A peering token from A, kept with its establishment secret. Its other fields are public: CA root
 * certificates, addresses, the server name and the PeerID.
 */
async function generateToken(label: string): Promise<string> {
  const { PeeringToken } = await ok<{ PeeringToken: string }>(a!, 'POST', '/v1/peering/token', {
    PeerName: 'cluster-b',
  });
  keep(`${label} peering token`, PeeringToken);
  const decoded = JSON.parse(Buffer.from(PeeringToken, 'base64').toString('utf8')) as Record<
    string,
    unknown
  >;
  keep(`${label} peering token EstablishmentSecret`, decoded.EstablishmentSecret as string);
  peerIds.push(decoded.PeerID as string);
  return PeeringToken;
}

const state = async (node: MeshProcess, name: string) => {
  const res = await node.api<{ State: string }>('GET', `/v1/peering/${name}`);
  return res.status === 404 ? 'GONE' : res.body.State;
};

const rootIds = async (node: MeshProcess) =>
  (await ok<{ Roots: { ID: string }[] }>(node, 'GET', '/v1/connect/ca/roots')).Roots.map(
    (r) => r.ID,
  );

describe('log redaction over a full peering lifecycle (two real servers at --log-level debug)', () => {
  it('no token, secret or private key appears in any log line of either server', async () => {
    const caKeys = new Map<string, string>();
    const streamSecrets = new Set<string>();
    [a, b] = await Promise.all([
      startMeshProcess({ ...flags, datacenter: 'dc-a', httpToken: httpTokenA }),
      startMeshProcess({ ...flags, datacenter: 'dc-b', httpToken: httpTokenB }),
    ]);
    keep('A --http-token', httpTokenA);
    keep('B --http-token', httpTokenB);
    caKeyFiles(a.proc.dataDir, caKeys);
    caKeyFiles(b.proc.dataDir, caKeys);

    // Peering: A generates, B establishes, both ACTIVE.
    /** B establishes with `token`; both sides turn ACTIVE; the stream secret B stored is kept. */
    const establish = async (token: string, what: string) => {
      await ok(b!, 'POST', '/v1/peering/establish', { PeerName: 'cluster-a', PeeringToken: token });
      await waitFor(
        async () =>
          (await state(a!, 'cluster-b')) === 'ACTIVE' &&
          (await state(b!, 'cluster-a')) === 'ACTIVE',
        { timeoutMs: 10_000, what },
      );
      for (const s of streamSecretsIn(b!.proc.dataDir)) streamSecrets.add(s);
    };
    const first = await generateToken('first');
    await establish(first, 'both sides ACTIVE');
    // Establishing again with the same (now spent) token is refused, and logged by A.
    const spent = await b.api<{ error: string }>('POST', '/v1/peering/establish', {
      PeerName: 'cluster-a',
      PeeringToken: first,
    });
    expect(spent.status, `the spent token is refused: ${JSON.stringify(spent.body)}`).toBe(403);

    // A exports api behind its mesh gateway; B's web reaches it through B's gateway.
    await a.register(withSidecar('api', 9090));
    await a.register(gateway('gw-a', 8443, '203.0.113.7'));
    await a.putConfig(exportEntry({ api: ['cluster-b'] }));
    await b.register(
      withSidecar('web', 8080, [
        {
          DestinationName: 'api',
          DestinationPeer: 'cluster-a',
          LocalBindPort: 19090,
          MeshGateway: { Mode: 'local' },
        },
      ]),
    );
    await b.register(gateway('gw-b', 9443, '198.51.100.9'));
    const proxies = await Promise.all([
      proxy(a, 'api-sidecar-proxy', 'A'),
      proxy(a, 'gw-a', 'A'),
      proxy(b, 'web-sidecar-proxy', 'B'),
      proxy(b, 'gw-b', 'B'),
    ]);
    const [apiA, , webB] = proxies;
    await apiA!.envoy.until(
      (e) => e.names(TypeUrl.listener).some((n) => n.startsWith('public_listener:')),
      "api's public listener",
    );
    await webB!.envoy.until(
      (e) => e.names(TypeUrl.listener).some((n) => n.startsWith('api?peer=cluster-a')),
      "web's peered upstream listener",
    );
    // The leaf secret follows the listener that names it.
    await waitFor(() => apiA!.keys.size === 1 && webB!.keys.size === 1, {
      timeoutMs: 10_000,
      what: 'both sidecars to receive their leaf key over SDS',
    });

    // A wrong proxy token is refused (and logged); so is a wrong HTTP token.
    const wrongProxyToken = randomBytes(32).toString('base64url');
    keep('wrong proxy token', wrongProxyToken);
    const md = new grpc.Metadata();
    md.set('x-isthmus-token', wrongProxyToken);
    const badClient = adsClient(`127.0.0.1:${a.proc.xdsPort}`, a.xdsTls);
    clients.push(badClient);
    const refused = new EnvoyLike(badClient, 'api-sidecar-proxy', md);
    envoys.push(refused);
    const ended = await withDeadline(refused.ended, {
      timeoutMs: 5_000,
      what: 'the wrong-token stream to end',
    });
    expect(ended.code).toBe(grpc.status.UNAUTHENTICATED);
    const wrongHttpToken = `x-http-${randomUUID()}`;
    keep('wrong HTTP token', wrongHttpToken);
    const denied = await fetch(`http://${a.httpAddress}/v1/peerings`, {
      headers: { authorization: `Bearer ${wrongHttpToken}` },
    });
    expect(denied.status).toBe(403);
    const deniedWrite = await fetch(`http://${b.httpAddress}/v1/acl/token`, {
      method: 'POST',
      headers: { 'x-isthmus-token': wrongHttpToken, 'content-type': 'application/json' },
      body: JSON.stringify({ ProxyID: 'web-sidecar-proxy' }),
    });
    expect(deniedWrite.status).toBe(403);

    // A CA rotation on both sides: new root keys, new leaf keys pushed over SDS.
    const oldRoots = { a: await rootIds(a), b: await rootIds(b) };
    await ok(a, 'POST', '/v1/connect/ca/rotate', {});
    await ok(b, 'POST', '/v1/connect/ca/rotate', {});
    caKeyFiles(a.proc.dataDir, caKeys);
    caKeyFiles(b.proc.dataDir, caKeys);
    await waitFor(
      async () => {
        const [ra, rb] = [await rootIds(a!), await rootIds(b!)];
        return (
          ra.length === 1 &&
          !oldRoots.a.includes(ra[0]!) &&
          rb.length === 1 &&
          !oldRoots.b.includes(rb[0]!)
        );
      },
      { timeoutMs: 10_000, what: 'both rotations to retire the old root' },
    );
    await waitFor(() => apiA!.keys.size >= 2 && webB!.keys.size >= 2, {
      timeoutMs: 10_000,
      what: 'new leaf keys pushed after the rotation',
    });
    caKeyFiles(a.proc.dataDir, caKeys);
    caKeyFiles(b.proc.dataDir, caKeys);

    // A regenerated token, re-established; then the peering is deleted.
    await establish(await generateToken('regenerated'), 'ACTIVE again after re-establishing');
    await ok(a, 'DELETE', '/v1/peering/cluster-b');
    await waitFor(
      async () =>
        (await state(a!, 'cluster-b')) === 'GONE' &&
        ['GONE', 'TERMINATED'].includes(await state(b!, 'cluster-a')),
      {
        timeoutMs: 10_000,
        what: 'the peering deleted on A and terminated on B',
      },
    );

    // Stop both (their last lines flushed), then gather what must never have been logged.
    for (const e of envoys) e.close();
    await Promise.all([a.close(), b.close()]);
    for (const s of streamSecretsIn(b.proc.dataDir)) streamSecrets.add(s);
    expect(streamSecrets.size, "B's stream secret was found in its store").toBeGreaterThanOrEqual(
      1,
    );
    [...streamSecrets].forEach((s, i) => keep(`peering stream secret ${i + 1}`, s));
    expect(
      caKeys.size,
      'CA root keys of both servers, before and after rotation',
    ).toBeGreaterThanOrEqual(4);
    for (const [file, pem] of caKeys) keepPem(`CA root key ${file}`, pem);
    const leafKeys = new Set(proxies.flatMap((p) => [...p.keys]));
    expect(
      leafKeys.size,
      'leaf keys received over SDS (before and after rotation)',
    ).toBeGreaterThanOrEqual(4);
    [...leafKeys].forEach((pem, i) => keepPem(`leaf private key ${i + 1}`, pem));

    const logs = [
      ...a.proc.stdoutLines.map((line) => ({ server: 'A stdout', line })),
      ...a.proc
        .stderr()
        .split('\n')
        .map((line) => ({ server: 'A stderr', line })),
      ...b.proc.stdoutLines.map((line) => ({ server: 'B stdout', line })),
      ...b.proc
        .stderr()
        .split('\n')
        .map((line) => ({ server: 'B stderr', line })),
    ].filter((l) => l.line !== '');
    // The logs are worth checking: long, at debug level, and about the lifecycle we drove.
    expect(a.proc.stdoutLines.length + b.proc.stdoutLines.length).toBeGreaterThan(30);
    const text = logs.map((l) => l.line).join('\n');
    expect(text).toMatch(/"level":20/);
    expect(text).toMatch(/peering/i);
    expect(text).toContain('xds stream refused');
    expect(text).toContain('peering secret exchange refused');
    // The scan sees what is logged: the token's (public) PeerID is there, the same way a leak would
    // be.
    expect(logs.filter((l) => l.line.includes(peerIds[0]!)).length).toBeGreaterThan(0);

    const leaks = secrets.flatMap((s) =>
      logs
        .filter((l) => l.line.includes(s.value))
        .map((l) => `${s.what} in ${l.server}: ${l.line.slice(0, 300)}`),
    );
    expect(leaks).toEqual([]);
  }, 60_000);

  it('the logger censors secret fields wherever a caller puts them (the second line of defence)', async () => {
    let output = '';
    const logger = createLogger(
      'debug',
      new Writable({ write: (chunk, _enc, done) => void ((output += String(chunk)), done()) }),
    );
    const secretValues = {
      token: 'v-token',
      httpToken: 'v-http',
      SecretID: 'v-secret-id',
      PeeringToken: 'v-peering-token',
      EstablishmentSecret: 'v-establishment',
      open: { streamSecret: 'v-stream' },
      leaf: { keyPem: 'v-key-pem', privateKey: 'v-private-key' },
      headers: { authorization: 'Bearer v-auth', 'x-isthmus-token': 'v-x-token' },
    };
    logger.debug({ ...secretValues, peeringId: 'kept' }, 'fields');
    logger.flush();
    const line = JSON.parse(output.trim()) as Record<string, unknown>;
    expect(line.peeringId).toBe('kept');
    expect(output).not.toMatch(/v-[a-z-]+/);
    expect((output.match(/\[redacted\]/g) ?? []).length).toBe(10);
  });
});
