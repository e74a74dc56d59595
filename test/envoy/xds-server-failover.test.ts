/**
 * Kill -9 the server a proxy is connected to (issue 15, docs/architecture.md "Store"): two
 * `isthmus server --store etcd` processes on one etcd prefix, two real Envoys (web's sidecar
 * calling api through api's sidecar) bootstrapped with both servers, as `isthmus envoy bootstrap
 * --xds-addr A,B` writes them. The server web's Envoy streams from is found by its xDS
 * connection (Envoy's `/clusters`: the `isthmus_xds` host with an active connection) and killed
 * with SIGKILL while requests flow: every request keeps being answered, the Envoy reconnects to
 * the other server by itself, holds the same config (config_dump compared without timestamps),
 * and every write the killed server answered 200 before it died is on the survivor.
 *
 * What this proves about re-sends: config versions are content hashes and a reconnecting Delta
 * stream names what it holds (`initial_resource_versions`), so the survivor, building the same
 * config from the same store, sends no listener, cluster, route or endpoint the Envoy holds: none
 * is modified (Envoy's counters stay put, so nothing drains) and the dump is the same. The one
 * resource that does change is the proxy's leaf certificate (SDS): each server signs the leaves of
 * its own proxies, so the survivor sends a new leaf for the same identity under the same root,
 * which Envoy swaps in without touching a listener.
 */
import { X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildBootstrap } from '../../src/mesh/bootstrap.js';
import { type EtcdServer, skipWithoutEtcd, startEtcd } from '../helpers/etcd.js';
import { type MeshProcess, startMeshProcess } from '../helpers/mesh-server.js';
import { cleanupProcesses } from '../helpers/process.js';
import { waitFor, withDeadline } from '../helpers/wait.js';
import { closeApps, listenPort, startApp } from './apps.js';
import {
  cleanupEnvoys,
  type ConfigDump,
  type EnvoyProcess,
  showEnvoyLogsOnFailure,
  skipWithoutEnvoy,
  startEnvoy,
  waitHealthy,
} from './harness.js';
import { dumpSecrets, signedBy } from './dumps.js';
import { waitSynced, withSidecar } from './mesh.js';
import { LoadLoop } from './traffic.js';

/** Reconnecting takes Envoy's ADS retry back-off (up to a few seconds); generous for a loaded machine. */
const reconnectBoundMs = 60_000;

/** The xDS server port Envoy holds an active connection to, from `/clusters` (text). */
async function connectedXdsPorts(envoy: EnvoyProcess): Promise<number[]> {
  const text = await (await fetch(`${envoy.adminUrl}/clusters`)).text();
  return [...text.matchAll(/^isthmus_xds::127\.0\.0\.1:(\d+)::cx_active::(\d+)$/gm)]
    .filter((m) => Number(m[2]) > 0)
    .map((m) => Number(m[1]));
}

/**
 * The dynamic part of a dump, without the times Envoy stamps on each update, and with the proxy's
 * leaf certificate as the identity it certifies and the root it chains to: each server signs the
 * leaves of the proxies it serves itself (the key never leaves the server), so the survivor's leaf
 * is a new certificate for the same identity under the same root.
 */
function comparable(dump: ConfigDump): unknown {
  const roots = dumpSecrets(dump).flatMap((s) => (s.trustedCaPem ? [s.trustedCaPem] : []));
  return JSON.parse(
    JSON.stringify(dump.configs.filter((c) => !String(c['@type']).includes('Bootstrap'))),
    (key, value: unknown) => {
      if (key === 'last_updated') return undefined;
      const entry = value as {
        name?: string;
        secret?: { tls_certificate?: { certificate_chain?: { inline_string?: string } } };
      };
      const chain = entry?.secret?.tls_certificate?.certificate_chain?.inline_string;
      if (chain === undefined) return value;
      const leaf = new X509Certificate(chain);
      return {
        name: entry.name,
        leafFor: leaf.subjectAltName,
        signedByARoot: roots.some((root) => signedBy(leaf.toString(), root)),
      };
    },
  );
}

describe.skipIf(skipWithoutEnvoy() || skipWithoutEtcd())(
  'kill -9 the xDS server of a real Envoy bootstrapped with two servers on etcd',
  () => {
    let etcd: EtcdServer;
    const servers: MeshProcess[] = [];
    const envoys = new Map<string, EnvoyProcess>();
    let upstreamPort = 0;

    showEnvoyLogsOnFailure();

    beforeAll(async () => {
      etcd = await startEtcd();
      const flags = {
        datacenter: 'dc1',
        store: 'etcd',
        etcdEndpoints: etcd.endpoint,
        etcdPrefix: 'failover/',
      };
      servers.push(...(await Promise.all([startMeshProcess(flags), startMeshProcess(flags)])));
      const [first] = servers;
      const api = await startApp('http', 'api');
      await first!.putConfig({ Kind: 'service-defaults', Name: 'api', Protocol: 'http' });
      await first!.register(withSidecar('api', api.port, await listenPort()));
      upstreamPort = await listenPort();
      await first!.register(
        withSidecar('web', await listenPort(), await listenPort(), [
          { DestinationName: 'api', LocalBindPort: upstreamPort },
        ]),
      );
      // As `isthmus envoy bootstrap --xds-addr 127.0.0.1:A,127.0.0.1:B` writes it (same builder).
      for (const proxyId of ['api-sidecar-proxy', 'web-sidecar-proxy']) {
        const bootstrap = buildBootstrap({
          proxyId,
          kind: 'connect-proxy',
          datacenter: 'dc1',
          xdsAddr: servers.map((s) => ({ host: '127.0.0.1', port: s.proc.xdsPort })),
          adminAddr: { host: '127.0.0.1', port: 0 },
          token: await first!.token(proxyId),
          tls: await first!.proc.xdsTls(),
        });
        const envoy = await startEnvoy(proxyId, bootstrap);
        envoys.set(proxyId, envoy);
        await waitHealthy(envoy);
      }
    }, 180_000);

    afterAll(async () => {
      await cleanupEnvoys();
      await closeApps();
      await cleanupProcesses();
      await etcd?.stop();
    });

    it('the Envoy keeps serving, reconnects to the other server, loses nothing; writes answered 200 survive', async () => {
      const web = envoys.get('web-sidecar-proxy')!;
      const load = new LoadLoop(upstreamPort, { requestTimeoutMs: 20_000 });
      try {
        await load.waitForSuccesses(20, { app: 'api' });
        const ports = await waitFor(
          async () => {
            const connected = await connectedXdsPorts(web);
            return connected.length === 1 && connected;
          },
          { timeoutMs: 30_000, what: "web's Envoy to hold one xDS connection" },
        );
        const victim = servers.find((s) => s.proc.xdsPort === ports[0])!;
        const survivor = servers.find((s) => s !== victim)!;
        // Writes the victim answers 200 for just before it dies (web's config does not use them).
        for (let i = 0; i < 5; i++) {
          await victim.register({ ID: `written-${i}`, Name: `written-${i}`, Port: 9000 + i });
          await victim.putConfig({
            Kind: 'service-defaults',
            Name: `written-${i}`,
            Protocol: 'tcp',
          });
        }
        await waitSynced(victim, 'web-sidecar-proxy');
        const before = await web.configDump();
        const counters = async () =>
          web.stats(
            '^(listener_manager\\.(listener_modified|listener_in_place_updated|listener_removed)|cluster_manager\\.(cluster_modified|cluster_removed)|control_plane\\.connected_state)$',
          );
        const countersBefore = await counters();

        load.phase('handover');
        const killedAt = Date.now();
        victim.proc.child.kill('SIGKILL');
        await withDeadline(victim.proc.exited, { timeoutMs: 10_000, what: 'the server to die' });
        await waitFor(
          async () => {
            const connected = await connectedXdsPorts(web);
            const stats = await web.stats('^control_plane\\.connected_state$');
            return (
              connected.length === 1 &&
              connected[0] === survivor.proc.xdsPort &&
              stats['control_plane.connected_state'] === 1
            );
          },
          { timeoutMs: reconnectBoundMs, what: "web's Envoy to stream from the other server" },
        );
        const reconnectedMs = Date.now() - killedAt;
        await waitSynced(survivor, 'web-sidecar-proxy');
        // Requests keep flowing until the reconnect is done, and a little after.
        load.phase('after');
        await load.waitForSuccesses(20, { app: 'api' });
        const handover = load.counts('handover');
        console.log(
          `xDS server killed: web's Envoy reconnected to the other server in ${reconnectedMs} ms; ${handover.ok} requests answered meanwhile, ${handover.failed} failed`,
        );
        expect(handover.failures).toEqual({});
        expect(load.counts('after').failures).toEqual({});

        expect(comparable(await web.configDump())).toEqual(comparable(before));
        const countersAfter = await counters();
        expect(countersAfter).toEqual(countersBefore);

        // Everything the dead server answered 200 for is on the survivor.
        const catalog = await survivor.api<Record<string, string[]>>('GET', '/v1/catalog/services');
        for (let i = 0; i < 5; i++) {
          expect(catalog.body).toHaveProperty(`written-${i}`);
          const entry = await survivor.api<{ Protocol: string }>(
            'GET',
            `/v1/config/service-defaults/written-${i}`,
          );
          expect(entry.body.Protocol).toBe('tcp');
        }
      } finally {
        await load.stop();
      }
    }, 180_000);
  },
);
