/**
 * Every bootstrap `isthmus envoy bootstrap` writes is one Envoy accepts: the real CLI's output for
 * sidecars and mesh gateways, with and without a token, with the xDS server named by an IPv4
 * address, an IPv6 address or a host name, and with each form of admin address, goes through
 * `envoy --mode validate`, each with TLS to the xDS server (roots from `--xds-ca-file`) or, for
 * some, `--xds-plaintext`. Then two of them drive a real Envoy to LIVE against a real server over
 * TLS, asking the server how (GET /v1/xds/server): one reaching xDS over IPv6 loopback, one through
 * a host name (STRICT_DNS).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRoot } from '../../src/ca/x509.js';
import { cleanupProcesses, runCli, tempDir } from '../helpers/process.js';
import { closeApps, listenPort } from './apps.js';
import {
  type Bootstrap,
  cleanupEnvoys,
  showEnvoyLogsOnFailure,
  skipWithoutEnvoy,
  startEnvoy,
  validateBootstrap,
  waitHealthy,
} from './harness.js';
import { type MeshProcess, startCluster, waitSynced, withSidecar } from './mesh.js';

/** A CA root in a PEM file, as `isthmus ca roots --pem` writes one. */
let caFile = '';
beforeAll(async () => {
  const root = await createRoot({
    rootUri: 'spiffe://11111111-2222-4333-8444-555555555555.consul',
    name: 'test root',
    now: Date.now(),
    validityMs: 3_600_000,
  });
  caFile = join(tempDir('isthmus-bootstrap-'), 'roots.pem');
  writeFileSync(caFile, root.certPem);
});

interface Variant {
  readonly name: string;
  readonly args: readonly string[];
}

const xdsAddrs = [
  ['IPv4', '127.0.0.1:8502'],
  ['IPv6', '[::1]:8502'],
  ['host name', 'localhost:8502'],
] as const;
const adminBinds = [
  ['default admin', []],
  ['admin 127.0.0.1:0', ['--admin-bind', '127.0.0.1:0']],
  ['admin [::1]:19000', ['--admin-bind', '[::1]:19000']],
  ['admin 0.0.0.0:19000', ['--admin-bind', '0.0.0.0:19000']],
] as const;

/**
 * Every xDS address with every admin address; across them the proxy kind and the token alternate
 * so that each kind meets each address with and without a token, and some set --cluster and
 * --datacenter.
 */
function variants(): Variant[] {
  const out: Variant[] = [];
  let i = 0;
  for (const [xdsName, xds] of xdsAddrs) {
    for (const [adminName, admin] of adminBinds) {
      const gateway = i % 2 === 1;
      const token = Math.floor(i / 2) % 2 === 1;
      const named = i % 3 === 2;
      const plaintext = i % 4 === 3;
      const args = [
        ...(plaintext ? ['--xds-plaintext'] : ['--xds-ca-file', caFile]),
        '--proxy-id',
        gateway ? 'mesh-gateway-1' : 'web-sidecar-proxy',
        ...(gateway ? ['--gateway', 'mesh'] : []),
        ...(token ? ['--token', 'b1e7f3a0-1234-4cde-9f00-0123456789ab'] : []),
        '--xds-addr',
        xds,
        ...admin,
        ...(named ? ['--cluster', gateway ? 'gateways' : 'web', '--datacenter', 'dc-east-2'] : []),
      ];
      const name = [
        gateway ? 'mesh gateway' : 'sidecar',
        token ? 'token' : 'no token',
        `xDS ${xdsName}`,
        adminName,
        plaintext ? 'plaintext xDS' : 'TLS xDS',
        ...(named ? ['--cluster/--datacenter'] : []),
      ].join(', ');
      out.push({ name, args });
      i++;
    }
  }
  return out;
}

async function cliBootstrap(args: readonly string[]): Promise<Bootstrap> {
  const run = await runCli(['envoy', 'bootstrap', ...args]);
  if (run.code !== 0)
    throw new Error(`isthmus envoy bootstrap ${args.join(' ')}: exit ${run.code}: ${run.stderr}`);
  return JSON.parse(run.stdout) as Bootstrap;
}

/** Runs `fn` over `items`, `size` at a time (each one spawns a CLI and an Envoy). */
async function inBatches<T, R>(
  items: readonly T[],
  size: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += size)
    out.push(...(await Promise.all(items.slice(i, i + size).map(fn))));
  return out;
}

describe.skipIf(skipWithoutEnvoy())(
  'envoy --mode validate on every bootstrap the CLI writes',
  () => {
    showEnvoyLogsOnFailure();

    afterAll(async () => {
      await cleanupEnvoys();
      await closeApps();
      await cleanupProcesses();
    });

    it('covers each kind with and without a token, every xDS address form and every admin address form', () => {
      const all = variants();
      expect(all).toHaveLength(12);
      for (const kind of ['sidecar', 'mesh gateway']) {
        for (const token of ['no token', 'token'])
          expect(
            all.filter((v) => v.name.startsWith(`${kind}, ${token},`)).length,
            `${kind}, ${token}`,
          ).toBeGreaterThan(0);
      }
      expect(all.filter((v) => v.name.includes('--cluster'))).not.toHaveLength(0);
    });

    it('Envoy accepts all of them', async () => {
      const results = await inBatches(variants(), 4, async (v) => {
        const verdict = await validateBootstrap(await cliBootstrap(v.args));
        return { variant: v.name, ok: verdict.ok, output: verdict.ok ? '' : verdict.output };
      });
      expect(results.filter((r) => !r.ok)).toEqual([]);
      expect(results).toHaveLength(12);
    });

    it('the judge is real: Envoy refuses the same bootstrap with a host name where it binds the admin listener', async () => {
      // The CLI refuses `--admin-bind localhost:19000` for this reason; edit its output to see
      // Envoy's verdict.
      const json = (await cliBootstrap([
        '--proxy-id',
        'web-sidecar-proxy',
        '--xds-ca-file',
        caFile,
      ])) as {
        admin: { address: { socket_address: { address: string } } };
      };
      json.admin.address.socket_address.address = 'localhost';
      const verdict = await validateBootstrap(json);
      expect(verdict.ok).toBe(false);
      expect(verdict.output).toContain('malformed IP address: localhost');
    });

    describe('a real Envoy from the CLI bootstrap reaches the server and goes LIVE', () => {
      const clusters: MeshProcess[] = [];

      afterAll(async () => {
        await cleanupEnvoys();
        for (const c of clusters) await c.close();
      });

      /** A server with `web` and its sidecar registered, and a token for the sidecar. */
      async function serverWithSidecar(
        flags: Record<string, string>,
      ): Promise<{ dc: MeshProcess; token: string }> {
        const dc = await startCluster('dc1', flags);
        clusters.push(dc);
        await dc.register(withSidecar('web', await listenPort(), await listenPort()));
        return { dc, token: await dc.token('web-sidecar-proxy') };
      }

      it('xDS over IPv6 loopback: the server listens on [::1] and the bootstrap dials it', async () => {
        const { dc, token } = await serverWithSidecar({ xdsAddr: '[::1]:0' });
        expect(dc.proc.started.xdsAddr).toBe(`[::1]:${dc.proc.xdsPort}`);
        const bootstrap = await cliBootstrap([
          '--proxy-id',
          'web-sidecar-proxy',
          '--token',
          token,
          '--xds-addr',
          `[::1]:${dc.proc.xdsPort}`,
          '--http-addr',
          dc.httpAddress,
          '--admin-bind',
          '127.0.0.1:0',
        ]);
        const envoy = await startEnvoy('web-sidecar-proxy (xDS [::1])', bootstrap);
        expect(await waitSynced(dc, 'web-sidecar-proxy')).toMatchObject({
          CDS: 'SYNCED',
          LDS: 'SYNCED',
          SDS: 'SYNCED',
        });
        await waitHealthy(envoy);
        expect((await envoy.clusters()).get('isthmus_xds')).toEqual([
          { address: `::1:${dc.proc.xdsPort}`, healthy: true },
        ]);
        await envoy.stop();
      });

      it('xDS through a host name: localhost, resolved by Envoy (STRICT_DNS)', async () => {
        const { dc, token } = await serverWithSidecar({});
        const bootstrap = await cliBootstrap([
          '--proxy-id',
          'web-sidecar-proxy',
          '--token',
          token,
          '--xds-addr',
          `localhost:${dc.proc.xdsPort}`,
          '--http-addr',
          dc.httpAddress,
          '--admin-bind',
          '[::1]:0',
        ]);
        expect(JSON.stringify(bootstrap)).toContain('"type":"STRICT_DNS"');
        expect(JSON.stringify(bootstrap)).toContain('"sni":"xds.isthmus.internal"');
        const envoy = await startEnvoy('web-sidecar-proxy (xDS localhost)', bootstrap);
        // An Envoy that never reaches its server still goes LIVE (empty) after its initial-fetch
        // timeouts: the server's view of the proxy is what shows it connected.
        expect(await waitSynced(dc, 'web-sidecar-proxy')).toMatchObject({
          CDS: 'SYNCED',
          LDS: 'SYNCED',
          SDS: 'SYNCED',
        });
        await waitHealthy(envoy);
        // The server listens on 127.0.0.1 (its default family); Envoy resolved localhost to it, not
        // ::1.
        expect((await envoy.clusters()).get('isthmus_xds')).toEqual([
          { address: `127.0.0.1:${dc.proc.xdsPort}`, healthy: true },
        ]);
        await envoy.stop();
      });
    });
  },
);
