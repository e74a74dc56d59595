/**
 * `isthmus troubleshoot` against real faults (issue 6): two in-process servers peered over their
 * peering ports, fake Envoys over Delta, and the real CLI (`bin/isthmus.js`) whose output is
 * compared with test/golden/cli/troubleshoot-*.txt (times, ports and trust domains masked). Each
 * fault is produced the way it happens to a user, one at a time; the last one stops a server.
 */
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Checklist } from '../../src/troubleshoot/index.js';
import { TypeUrl } from '../../src/xds/types.js';
import { connectDelta, type DeltaEnvoy } from '../helpers/fake-envoy.js';
import { expectGoldenText } from '../helpers/golden.js';
import type { MeshServer } from '../helpers/mesh-server.js';
import { exportEntry, startPeeredMeshes, type PeeredMeshes } from '../helpers/peered-mesh.js';
import { cleanupProcesses, runCli } from '../helpers/process.js';
import { waitFor } from '../helpers/wait.js';

/** Fast heartbeats, so a stopped peer shows a stale heartbeat within seconds. */
const heartbeat = { peeringHeartbeatMs: '300', peeringHeartbeatTimeoutMs: '4000' };

let meshes: PeeredMeshes;
let a: MeshServer;
let b: MeshServer;
let tdA: string;
let tdB: string;
const envoys: DeltaEnvoy[] = [];

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

const gatewayB = {
  ID: 'gw-b',
  Name: 'mesh-gateway',
  Kind: 'mesh-gateway',
  Address: '127.0.0.1',
  Port: 9443,
  TaggedAddresses: {
    lan: { Address: '127.0.0.1', Port: 9443 },
    wan: { Address: '198.51.100.9', Port: 443 },
  },
};

/** Times, ages, ephemeral ports and trust domains differ run to run. */
function mask(text: string): string {
  return text
    .replaceAll(tdA, '<td-a>')
    .replaceAll(tdB, '<td-b>')
    .replace(/\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z/g, '<time>')
    .replace(/\b\d+(d|h\d*m?|m\d*s?|s)\b(?= ago| \(timeout|, more than)/g, '<age>')
    .replace(/open for \d+\w*/g, 'open for <age>')
    .replace(/127\.0\.0\.1:\d{5}\b/g, '127.0.0.1:<port>');
}

async function troubleshoot(
  node: MeshServer,
  args: string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runCli(['troubleshoot', ...args, '--http-addr', `127.0.0.1:${node.server.httpPort}`]);
}

/**
 * Runs the CLI, checks its exit code (0 = all ✓, 1 = some ✗) and compares stdout with a golden
 * file.
 */
async function expectChecklist(
  node: MeshServer,
  args: string[],
  golden: string,
  exitCode: 0 | 1,
): Promise<string> {
  const run = await troubleshoot(node, args);
  expect(run.stderr).toBe('');
  const { actual, expected } = expectGoldenText(`cli/troubleshoot-${golden}.txt`, run.stdout, mask);
  expect(actual).toBe(expected);
  expect(run.code, run.stdout).toBe(exitCode);
  return run.stdout;
}

async function checklist(node: MeshServer, path: string): Promise<Checklist> {
  const res = await node.api<Checklist>('GET', path);
  if (res.status !== 200) throw new Error(`${path}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

/** Waits until the API's checklist fails exactly `failing` (by check name). */
async function untilFailing(
  node: MeshServer,
  path: string,
  failing: string[],
  timeoutMs = 10_000,
): Promise<Checklist> {
  let last: Checklist | undefined;
  try {
    return await waitFor(
      async () => {
        last = await checklist(node, path);
        const names = last.Checks.filter((c) => !c.OK).map((c) => c.Name);
        return names.join('\n') === failing.join('\n') && last;
      },
      { timeoutMs, intervalMs: 50, what: `${path} to fail exactly [${failing.join(', ')}]` },
    );
  } catch (err) {
    throw new Error(
      `${(err as Error).message}; last: ${JSON.stringify(last?.Checks.filter((c) => !c.OK))}`,
    );
  }
}

/**
 * A Delta client that wants every type (explicit wildcard), ACKs everything and NACKs `nackType`.
 */
async function nackingEnvoy(
  node: MeshServer,
  proxyId: string,
  nackType: string,
  message: string,
): Promise<DeltaEnvoy> {
  const md = new grpc.Metadata();
  md.set('x-isthmus-token', await node.token(proxyId));
  const envoy = connectDelta(node.xds, proxyId, md);
  envoys.push(envoy);
  for (const t of Object.values(TypeUrl)) envoy.send(t, { subscribe: ['*'] });
  void (async () => {
    for (;;) {
      let r: Awaited<ReturnType<typeof envoy.next>>;
      try {
        r = await envoy.next(60_000);
      } catch {
        return;
      }
      if (r.typeUrl === nackType) envoy.nack(r, message);
      else envoy.ack(r);
    }
  })();
  return envoy;
}

beforeAll(async () => {
  meshes = await startPeeredMeshes(heartbeat, heartbeat);
  ({ a, b } = meshes);
  [tdA, tdB] = await Promise.all([a.trustDomain(), b.trustDomain()]);
  await a.register(withSidecar('api', 9090));
  await a.register(withSidecar('secret', 9091));
  await a.register({
    ID: 'gw-1',
    Name: 'mesh-gateway',
    Kind: 'mesh-gateway',
    Address: '127.0.0.1',
    Port: 8443,
    TaggedAddresses: {
      lan: { Address: '127.0.0.1', Port: 8443 },
      wan: { Address: '203.0.113.7', Port: 443 },
    },
  });
  await b.register(
    withSidecar('web', 8080, [
      { DestinationName: 'api', DestinationPeer: 'cluster-a', LocalBindPort: 19090 },
    ]),
  );
  await b.register(gatewayB);
}, 30_000);

afterAll(async () => {
  for (const e of envoys) e.close();
  await meshes?.close();
  await cleanupProcesses();
});

describe('isthmus troubleshoot peering', () => {
  it('✗ exports non-empty: neither side exports anything, so nothing flows; the fix is the exported-services entry to write', async () => {
    await untilFailing(b, '/v1/troubleshoot/peering/cluster-a', ['exports non-empty']);
    const out = await expectChecklist(
      b,
      ['peering', '--name', 'cluster-a'],
      'peering-no-exports',
      1,
    );
    expect(out).toContain(
      `echo '{"Kind":"exported-services","Name":"default","Services":[{"Name":"<SERVICE>","Consumers":[{"Peer":"cluster-a"}]}]}' | isthmus config write -`,
    );
    // A one-way peering is healthy: once A exports api, B (importing only) passes.
    await a.putConfig(exportEntry({ api: ['cluster-b'] }));
    const oneWay = await untilFailing(b, '/v1/troubleshoot/peering/cluster-a', []);
    expect(oneWay.Checks.find((c) => c.Name === 'exports non-empty')?.Detail).toMatch(
      /one-way peering/,
    );
    await b.putConfig(exportEntry({ web: ['cluster-a'] }));
  });

  it('✗ mesh gateway registered: B exports web but deregistered its gateway', async () => {
    expect((await b.api('PUT', '/v1/agent/service/deregister/gw-b')).status).toBe(200);
    await untilFailing(b, '/v1/troubleshoot/peering/cluster-a', ['mesh gateway registered']);
    await expectChecklist(b, ['peering', '--name', 'cluster-a'], 'peering-no-gateway', 1);
    await b.register(gatewayB);
  });

  it('all ✓ on both sides of a healthy peered pair (exports both ways, gateways, connected proxies), exit 0', async () => {
    const [webB, apiA, gwA] = await Promise.all([
      b.connect('web-sidecar-proxy'),
      a.connect('api-sidecar-proxy'),
      a.connect('gw-1'),
    ]);
    await webB.until(
      (e) =>
        e.get(TypeUrl.listener, 'api?peer=cluster-a:127.0.0.1:19090') !== undefined &&
        e.get(TypeUrl.secret, 'roots:peer:cluster-a') !== undefined,
      "web's peered upstream",
    );
    await Promise.all([webB.settle(), apiA.settle(), gwA.settle()]);
    await untilFailing(a, '/v1/troubleshoot/peering/cluster-b', []);
    await untilFailing(b, '/v1/troubleshoot/peering/cluster-a', []);
    await untilFailing(b, '/v1/troubleshoot/proxy/web-sidecar-proxy', []);
    await Promise.all([
      expectChecklist(a, ['peering', '--name', 'cluster-b'], 'peering-healthy-acceptor', 0),
      expectChecklist(b, ['peering', '--name', 'cluster-a'], 'peering-healthy-dialer', 0),
      expectChecklist(b, ['proxy', 'web-sidecar-proxy'], 'proxy-healthy-peered-upstream', 0),
      expectChecklist(a, ['proxy', 'gw-1'], 'proxy-healthy-gateway', 0),
    ]);
  });
});

// Independent faults (each its own peering or proxy): run side by side to keep the file fast.
describe.concurrent('isthmus troubleshoot: independent faults', () => {
  it('✗ token used: a token generated for cluster-c was never used; --format json prints the API JSON and exits 1', async () => {
    expect((await a.api('POST', '/v1/peering/token', { PeerName: 'cluster-c' })).status).toBe(200);
    const [, json] = await Promise.all([
      expectChecklist(a, ['peering', '--name', 'cluster-c'], 'peering-token-unused', 1),
      runCli([
        'troubleshoot',
        'peering',
        '--name',
        'cluster-c',
        '--format',
        'json',
        '--http-addr',
        `127.0.0.1:${a.server.httpPort}`,
      ]),
    ]);
    expect(json.code).toBe(1);
    const list = JSON.parse(json.stdout) as Checklist;
    expect(list).toMatchObject({ Subject: expect.stringContaining('cluster-c'), OK: false });
    expect(list.Checks.filter((c) => !c.OK).map((c) => c.Name)).toEqual([
      'token used',
      'exports non-empty',
    ]);
  });

  it('an unknown peering is a one-line error pointing at `isthmus peering list` (HTTP 404)', async () => {
    const run = await troubleshoot(a, ['peering', '--name', 'nope']);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toBe(
      'isthmus: peering "nope" not found (see isthmus peering list) (HTTP 404)\n',
    );
  });

  it('✗ connected over xDS: a registered sidecar whose Envoy never connected', async () => {
    await b.register(withSidecar('reports', 8082));
    const out = await expectChecklist(
      b,
      ['proxy', 'reports-sidecar-proxy'],
      'proxy-never-connected',
      1,
    );
    expect(out).toContain(
      'isthmus envoy bootstrap --proxy-id reports-sidecar-proxy --token <TOKEN>',
    );
  });

  it('✗ LDS synced and ✗ last NACK: Envoy rejects the listeners, and the checklist shows its message', async () => {
    await b.register(withSidecar('billing', 8083));
    await nackingEnvoy(
      b,
      'billing-sidecar-proxy',
      TypeUrl.listener,
      'Error adding/updating listener(s) public_listener:127.0.0.1:8083: unknown filter',
    );
    await untilFailing(b, '/v1/troubleshoot/proxy/billing-sidecar-proxy', [
      'LDS synced',
      'last NACK',
    ]);
    const out = await expectChecklist(b, ['proxy', 'billing-sidecar-proxy'], 'proxy-nack', 1);
    expect(out).toMatch(
      /^✗ last NACK: Envoy rejected LDS public_listener:127\.0\.0\.1:\d+: Error adding\/updating listener\(s\) public_listener:127\.0\.0\.1:8083: unknown filter$/m,
    );
  });

  it('✗ upstream: a peered upstream whose service the peer does not export', async () => {
    await b.register(
      withSidecar('audit', 8084, [
        { DestinationName: 'secret', DestinationPeer: 'cluster-a', LocalBindPort: 19091 },
      ]),
    );
    const audit = await b.connect('audit-sidecar-proxy');
    await audit.until(
      (e) => e.names(TypeUrl.listener).some((n) => n.startsWith('public_listener:')),
      "audit's public listener",
    );
    await audit.settle();
    await untilFailing(b, '/v1/troubleshoot/proxy/audit-sidecar-proxy', [
      'upstream secret (peer cluster-a)',
    ]);
    await expectChecklist(b, ['proxy', 'audit-sidecar-proxy'], 'proxy-upstream-not-exported', 1);
  });

  it('an ID that is neither registered nor connected is a 404 one-liner', async () => {
    const run = await troubleshoot(b, ['proxy', 'ghost']);
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(
      'isthmus: proxy "ghost" is neither registered nor connected (see isthmus services list) (HTTP 404)\n',
    );
  });
});

describe('isthmus troubleshoot peering after the peer server stopped', () => {
  it('✗ stream up and ✗ heartbeat age on B once A is gone', async () => {
    await a.server.stop();
    const list = await untilFailing(
      b,
      '/v1/troubleshoot/peering/cluster-a',
      ['stream up', 'heartbeat age'],
      15_000,
    );
    expect(list.Checks.find((c) => c.Name === 'stream up')?.Detail).toMatch(/^FAILING: /);
    const run = await troubleshoot(b, ['peering', '--name', 'cluster-a']);
    expect(run.code).toBe(1);
    // The dial error's wording depends on how far the redial got: golden the rest.
    const stable = run.stdout.replace(
      /^✗ stream up: FAILING: .*$/m,
      '✗ stream up: FAILING: <dial error>',
    );
    const { actual, expected } = expectGoldenText(
      'cli/troubleshoot-peering-peer-stopped.txt',
      stable,
      mask,
    );
    expect(actual).toBe(expected);
  });
});
