/**
 * A real Envoy cut off from its server (issue 21 §1, docs/architecture.md "Failure modes"): `web`'s
 * sidecar reaches the xDS port through a real Toxiproxy. While the link is partitioned (or a black
 * hole) Envoy keeps serving its last config — web still reaches api — and once healed it
 * reconnects by itself and resumes its Delta stream with `initial_resource_versions`: the server
 * sends only what changed while it was away, not the whole config again. The bytes Envoy received
 * on the xDS cluster count it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildBootstrap } from '../../src/mesh/bootstrap.js';
import { cleanupProcesses } from '../helpers/process.js';
import {
  type FaultyLink,
  type ToxiproxyServer,
  skipWithoutToxiproxy,
  startToxiproxy,
} from '../helpers/toxiproxy.js';
import { waitFor } from '../helpers/wait.js';
import { type App, closeApps, httpCall, listenPort, startApp } from '../envoy/apps.js';
import {
  cleanupEnvoys,
  type EnvoyProcess,
  showEnvoyLogsOnFailure,
  skipWithoutEnvoy,
  startEnvoy,
  waitHealthy,
} from '../envoy/harness.js';
import {
  eventually,
  type MeshProcess,
  startCluster,
  startProxy,
  withSidecar,
} from '../envoy/mesh.js';

/** Envoy's counters for its xDS connection. */
interface XdsCounters {
  readonly connected: number;
  readonly rxBytes: number;
  readonly connections: number;
}

async function xdsCounters(envoy: EnvoyProcess): Promise<XdsCounters> {
  const s = await envoy.stats();
  const n = (name: string) => s[name] ?? 0;
  return {
    connected: n('control_plane.connected_state'),
    rxBytes: n('cluster.isthmus_xds.upstream_cx_rx_bytes_total'),
    connections: n('cluster.isthmus_xds.upstream_cx_total'),
  };
}

describe.skipIf(skipWithoutEnvoy() || skipWithoutToxiproxy())(
  'an Envoy cut off from its server (Toxiproxy on the xDS link)',
  () => {
    let dc: MeshProcess;
    let toxiproxy: ToxiproxyServer;
    let link: FaultyLink;
    let api: App;
    let web: EnvoyProcess;
    let webPort: number;

    showEnvoyLogsOnFailure();

    beforeAll(async () => {
      dc = await startCluster('dc1');
      toxiproxy = await startToxiproxy();
      link = await toxiproxy.proxy('xds-web', `127.0.0.1:${dc.proc.xdsPort}`);
      api = await startApp('http', 'api');
      await dc.putConfig({ Kind: 'service-defaults', Name: 'api', Protocol: 'http' });
      await dc.register(withSidecar('api', api.port, await listenPort()));
      webPort = await listenPort();
      await dc.register(
        withSidecar('web', await listenPort(), await listenPort(), [
          { DestinationName: 'api', LocalBindPort: webPort },
        ]),
      );
      await startProxy(dc, 'api-sidecar-proxy', { datacenter: 'dc1' });
      const [host, port] = link.listen.split(':');
      web = await startEnvoy(
        'web-sidecar-proxy',
        buildBootstrap({
          proxyId: 'web-sidecar-proxy',
          kind: 'connect-proxy',
          datacenter: 'dc1',
          xdsAddr: { host: host!, port: Number(port) },
          adminAddr: { host: '127.0.0.1', port: 0 },
          token: await dc.token('web-sidecar-proxy'),
          // TLS through the fault proxy: Envoy checks the server's name, not the address it dials.
          tls: await dc.proc.xdsTls(),
        }),
      );
      await waitHealthy(web);
      await eventually(async () => {
        const res = await httpCall(webPort, '/before');
        if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
      }, 'web → api before the fault');
    }, 90_000);

    afterAll(async () => {
      await cleanupEnvoys();
      await closeApps();
      await toxiproxy?.stop();
      await dc?.close();
      await cleanupProcesses();
    });

    it('partitioned: Envoy keeps routing on its last config; healed: it resumes with only what changed', async () => {
      const before = await xdsCounters(web);
      expect(before.connected).toBe(1);
      expect(before.rxBytes).toBeGreaterThan(0);

      await link.cut();
      await waitFor(async () => (await xdsCounters(web)).connected === 0, {
        timeoutMs: 30_000,
        intervalMs: 100,
        what: 'Envoy to see its xDS connection gone',
      });
      // The data plane does not need the control plane.
      for (let i = 0; i < 20; i++)
        expect((await httpCall(webPort, `/during/${i}`)).status).toBe(200);

      // A change while Envoy is away: a second api instance (an endpoint, nothing else).
      const api2 = await startApp('http', 'api');
      await dc.register(withSidecar('api-2', api2.port, await listenPort(), [], { Name: 'api' }));
      await startProxy(dc, 'api-2-sidecar-proxy', { datacenter: 'dc1' });

      const away = await xdsCounters(web);
      await link.heal();
      const t0 = Date.now();
      await waitFor(async () => (await xdsCounters(web)).connected === 1, {
        timeoutMs: 60_000,
        intervalMs: 100,
        what: 'Envoy to reconnect by itself after the heal',
      });
      const reconnectMs = Date.now() - t0;
      // The new endpoint arrives.
      await waitFor(async () => (await endpointCount(web)) >= 2, {
        timeoutMs: 30_000,
        intervalMs: 100,
        what: "web's api cluster to hold both instances",
      });
      expect((await httpCall(webPort, '/after')).status).toBe(200);
      const after = await xdsCounters(web);
      const resumedBytes = after.rxBytes - away.rxBytes;
      console.log(
        `xDS link healed: reconnected in ${reconnectMs} ms; first connection received ${before.rxBytes} B, the resumed one ${resumedBytes} B (${((100 * resumedBytes) / before.rxBytes).toFixed(1)} %)`,
      );
      expect(after.connections).toBeGreaterThan(before.connections);
      // Nothing Envoy held was pushed again. A full re-push would be at least the first
      // connection's bytes (they are plaintext protobuf: Envoy counts after TLS); what comes is
      // the new endpoint and the empty initial answers the protocol owes each wildcard type.
      expect(resumedBytes).toBeLessThan(before.rxBytes / 2);
    });
  },
);

async function endpointCount(envoy: EnvoyProcess): Promise<number> {
  const clusters = await envoy.clusters();
  for (const [name, hosts] of clusters) if (name.startsWith('api.')) return hosts.length;
  return 0;
}
