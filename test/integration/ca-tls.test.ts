/**
 * Real mutual-TLS handshakes (Node `tls` on 127.0.0.1) between two "proxies" using the CA's leaves
 * and trust bundles, before, during and after a root rotation.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type CaRoots, type CertificateAuthority, type Leaf, openCa } from '../../src/ca/index.js';
import { silentLogger } from '../../src/log.js';
import { serviceSni, serviceSpiffeId } from '../../src/mesh/names.js';
import { openLmdbStore } from '../../src/store/index.js';
import { waitFor, withDeadline } from '../helpers/wait.js';

/** What one proxy holds at a moment: its leaf and the roots it trusts. */
interface ProxyState {
  readonly leaf: Leaf;
  readonly roots: CaRoots;
}

const dirs: string[] = [];
const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

async function newCa(phaseMs = 200): Promise<CertificateAuthority> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'isthmus-ca-tls-'));
  dirs.push(dir);
  const store = await openLmdbStore(dir);
  const ca = await openCa(store, { dataDir: dir, logger: silentLogger(), rotation: { phaseMs } });
  closers.push(
    () => store.close(),
    () => ca.close(),
  );
  return ca;
}

const pems = (roots: CaRoots) => roots.roots.map((r) => r.certPem);

/**
 * Server: `server.leaf`, trusts `server.roots`, requires a client certificate. Client:
 * `client.leaf`, trusts `client.roots`, SNI of the service, and accepts only the expected SPIFFE ID
 * as the server's URI SAN (what Envoy's SAN matcher does). Resolves 'ok' once application data
 * flowed both ways, or the error message.
 */
async function handshake(
  server: ProxyState,
  client: ProxyState,
  expectedServerId: string,
): Promise<string> {
  const srv = tls.createServer(
    {
      key: server.leaf.keyPem,
      cert: server.leaf.certPem,
      ca: pems(server.roots),
      requestCert: true,
      rejectUnauthorized: true,
    },
    (socket) => {
      socket.end(`hello ${socket.getPeerX509Certificate()?.subjectAltName}`);
    },
  );
  srv.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as { port: number }).port;
  try {
    return await withDeadline(connect(port, client, expectedServerId), {
      timeoutMs: 5_000,
      what: 'the TLS handshake',
    });
  } finally {
    await new Promise((resolve) => srv.close(resolve));
  }
}

function connect(port: number, client: ProxyState, expectedServerId: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      servername: serviceSni('td.example', 'dc1', { name: 'a' }),
      key: client.leaf.keyPem,
      cert: client.leaf.certPem,
      ca: pems(client.roots),
      checkServerIdentity: (_host, cert) =>
        cert.subjectaltname === `URI:${expectedServerId}`
          ? undefined
          : new Error(`server SAN ${cert.subjectaltname} is not ${expectedServerId}`),
    });
    let data = '';
    socket.setEncoding('utf8').on('data', (chunk: string) => (data += chunk));
    socket.on('error', (err) => resolve(err.message));
    socket.on('end', () =>
      resolve(
        data === `hello URI:${client.leaf.spiffeId}`
          ? 'ok'
          : `unexpected reply ${JSON.stringify(data)}`,
      ),
    );
  });
}

describe('mTLS with CA leaves', () => {
  let ca: CertificateAuthority;
  let idA: string;
  let idB: string;
  const stateOf = async (spiffeId: string): Promise<ProxyState> => ({
    leaf: await ca.leaf({ spiffeId }),
    roots: ca.roots(),
  });

  beforeEach(async () => {
    ca = await newCa();
    idA = serviceSpiffeId(ca.trustDomain, 'dc1', { name: 'a' });
    idB = serviceSpiffeId(ca.trustDomain, 'dc1', { name: 'b' });
  });

  it('succeeds between two services of one CA, and checks the server SAN', async () => {
    const a = await stateOf(idA);
    const b = await stateOf(idB);
    expect(await handshake(a, b, idA)).toBe('ok');
    expect(await handshake(a, b, idB)).toMatch(/server SAN .* is not/);
  });

  it('fails when the client trusts a different CA, or the server does not trust the client', async () => {
    const other = await newCa();
    const a = await stateOf(idA);
    const b = await stateOf(idB);
    const stranger: ProxyState = {
      leaf: await other.leaf({
        spiffeId: serviceSpiffeId(other.trustDomain, 'dc1', { name: 'b' }),
      }),
      roots: other.roots(),
    };
    expect(await handshake(a, { leaf: b.leaf, roots: other.roots() }, idA)).toMatch(
      /unable to verify|self.signed|certificate/i,
    );
    // TLS 1.3: the client finishes first; the server then refuses its certificate and sends
    // nothing.
    expect(await handshake(a, { ...stranger, roots: a.roots }, idA)).toMatch(
      /unexpected reply ""|alert|certificate/i,
    );
  });

  it('never breaks across a rotation: every mix of previous-phase and current-phase state handshakes', async () => {
    // Capture, at each roots-changed event, the roots and the leaves a proxy would fetch right
    // then.
    const captured: Promise<{ a: ProxyState; b: ProxyState }>[] = [capture()];
    ca.subscribe((e) => void (e.kind === 'roots-changed' && captured.push(capture())));
    await ca.rotate();
    await waitFor(() => captured.length === 4, {
      timeoutMs: 5_000,
      what: 'the three rotation phases',
    });
    const phases = await Promise.all(captured);
    expect(phases.map((p) => p.a.roots.roots.length)).toEqual([1, 2, 2, 1]);
    expect(phases[2]!.a.leaf.rootId).not.toBe(phases[1]!.a.leaf.rootId);

    for (let i = 1; i < phases.length; i++) {
      const [prev, now] = [phases[i - 1]!, phases[i]!];
      for (const server of [prev.a, now.a]) {
        for (const client of [prev.b, now.b]) {
          for (const serverRoots of [prev.a.roots, now.a.roots]) {
            for (const clientRoots of [prev.b.roots, now.b.roots]) {
              const result = await handshake(
                { leaf: server.leaf, roots: serverRoots },
                { leaf: client.leaf, roots: clientRoots },
                idA,
              );
              expect(
                result,
                `phase ${i}: server leaf under ${server.leaf.rootId}, client leaf under ${client.leaf.rootId}`,
              ).toBe('ok');
            }
          }
        }
      }
    }
    // Why the phases wait: a proxy still holding a pre-rotation leaf fails once the old root is
    // retired.
    const retired = phases[3]!.a.roots;
    expect(
      await handshake(phases[0]!.a, { leaf: phases[3]!.b.leaf, roots: retired }, idA),
    ).not.toBe('ok');
  });

  function capture(): Promise<{ a: ProxyState; b: ProxyState }> {
    const roots = ca.roots();
    return Promise.all([ca.leaf({ spiffeId: idA }), ca.leaf({ spiffeId: idB })]).then(([a, b]) => ({
      a: { leaf: a, roots },
      b: { leaf: b, roots },
    }));
  }
});
