/**
 * Golden files of complete proxy configs, built through the real HTTP API, snapshot builder and xDS
 * server and received by a Delta fake Envoy (docs/architecture.md §9 item 3). Each resource also
 * passes Envoy's validate.rules and the cross-resource lint; so does each proxy's bootstrap.
 * `UPDATE_GOLDEN=1 npx vitest run test/golden` rewrites the files.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { buildBootstrap } from '../../src/mesh/bootstrap.js';
import { xdsServerName } from '../../src/mesh/names.js';
import type { EnvoyLike } from '../helpers/envoy-like.js';
import { expectGolden, orphanedGoldens } from '../helpers/golden.js';
import {
  apiL7IntentionsConfig,
  expectProxyGoldens,
  trustDomainMasker,
  webIntentionsConfig,
} from '../helpers/proxy-golden.js';
import { startMeshServer, type MeshServer } from '../helpers/mesh-server.js';
import { validateJson } from '../helpers/pgv.js';

const servers: MeshServer[] = [];
afterAll(async () => {
  for (const s of servers) await s.close();
});

async function checkProxy(
  caseName: string,
  mesh: MeshServer,
  envoy: EnvoyLike,
  kind: 'connect-proxy' | 'mesh-gateway',
): Promise<void> {
  expectProxyGoldens(
    `mesh/${caseName}`,
    envoy,
    trustDomainMasker({ 'trust-domain': mesh.server.ca.trustDomain }),
  );
  const bootstrap = buildBootstrap({
    proxyId: envoy.nodeId,
    kind,
    datacenter: 'dc1',
    xdsAddr: { host: '127.0.0.1', port: 8502 },
    adminAddr: { host: '127.0.0.1', port: 19000 },
    token: '00000000-0000-4000-8000-000000000000',
    // The roots differ per run; the golden shows where they go.
    tls: { caPem: '<the cluster CA roots, PEM>\n', serverName: xdsServerName },
  });
  expect(validateJson('envoy.config.bootstrap.v3.Bootstrap', bootstrap)).toEqual([]);
  const golden = expectGolden(`mesh/${caseName}/bootstrap.json`, bootstrap);
  expect(golden.actual).toBe(golden.expected);
}

function withSidecar(name: string, port: number, upstreams: unknown[] = []) {
  return {
    Name: name,
    Address: '127.0.0.1',
    Port: port,
    Connect: { SidecarService: { Proxy: { Upstreams: upstreams } } },
  };
}

describe('golden proxy configs', () => {
  it('sidecar with a TCP and an HTTP upstream and intentions', async () => {
    const mesh = await startMeshServer();
    servers.push(mesh);
    for (const entry of webIntentionsConfig) await mesh.putConfig(entry);
    await mesh.register(withSidecar('api', 9090));
    await mesh.register(withSidecar('db', 5432));
    await mesh.register(
      withSidecar('web', 8080, [
        { DestinationName: 'api', LocalBindPort: 19090 },
        { DestinationName: 'db', LocalBindPort: 15432 },
      ]),
    );
    const web = await mesh.connect('web-sidecar-proxy');
    await web.until(
      (e) =>
        e.names('type.googleapis.com/envoy.config.route.v3.RouteConfiguration').length === 1 &&
        e.names('type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret').length ===
          2 &&
        e.names('type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment').length === 2,
      'full config',
    );
    await web.settle();
    await checkProxy('sidecar-tcp-http-intentions', mesh, web, 'connect-proxy');
    // The same dc holds api's L7 intentions: its public listener's HTTP RBAC.
    await mesh.putConfig(apiL7IntentionsConfig);
    const api = await mesh.connect('api-sidecar-proxy');
    await api.until(
      (e) =>
        e
          .names('type.googleapis.com/envoy.config.listener.v3.Listener')
          .some((n) =>
            e.json('type.googleapis.com/envoy.config.listener.v3.Listener', n).includes('layer7'),
          ),
      'api with its L7 intentions',
    );
    await api.settle();
    await checkProxy('sidecar-l7-intentions', mesh, api, 'connect-proxy');
  });

  it('mesh gateway with three local services (none routed: nothing exports them) and a remote datacenter', async () => {
    const mesh = await startMeshServer();
    servers.push(mesh);
    for (const [name, port] of [
      ['api', 9090],
      ['db', 5432],
      ['web', 8080],
    ] as const)
      await mesh.register(withSidecar(name, port));
    await mesh.register({
      ID: 'mesh-gateway',
      Name: 'mesh-gateway',
      Kind: 'mesh-gateway',
      Address: '127.0.0.1',
      Port: 8443,
      TaggedAddresses: {
        lan: { Address: '127.0.0.1', Port: 8443 },
        wan: { Address: '192.0.2.10', Port: 443 },
      },
    });
    await mesh.register({
      ID: 'mesh-gateway-dc2',
      Name: 'mesh-gateway',
      Kind: 'mesh-gateway',
      Datacenter: 'dc2',
      Address: '10.2.0.5',
      Port: 8443,
      TaggedAddresses: { wan: { Address: '198.51.100.20', Port: 443 } },
    });
    const gw = await mesh.connect('mesh-gateway');
    await gw.until(
      (e) =>
        e.names('type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment').length ===
          1 && e.names('type.googleapis.com/envoy.config.listener.v3.Listener').length === 1,
      'gateway config',
    );
    await gw.settle();
    await checkProxy('mesh-gateway-remote-dc', mesh, gw, 'mesh-gateway');
  });

  it('mesh gateway binding its tagged addresses (envoy_mesh_gateway_bind_tagged_addresses): the default listener (both sides) and the WAN one share the remote datacenter chain', async () => {
    const mesh = await startMeshServer();
    servers.push(mesh);
    await mesh.register(withSidecar('api', 9090));
    await mesh.register({
      ID: 'mesh-gateway',
      Name: 'mesh-gateway',
      Kind: 'mesh-gateway',
      Address: '127.0.0.1',
      Port: 8443,
      TaggedAddresses: {
        lan: { Address: '127.0.0.1', Port: 8443 },
        wan: { Address: '192.0.2.10', Port: 443 },
      },
      Proxy: { Config: { envoy_mesh_gateway_bind_tagged_addresses: true } },
    });
    await mesh.register({
      ID: 'mesh-gateway-dc2',
      Name: 'mesh-gateway',
      Kind: 'mesh-gateway',
      Datacenter: 'dc2',
      Address: '10.2.0.5',
      Port: 8443,
      TaggedAddresses: { wan: { Address: '198.51.100.20', Port: 443 } },
    });
    const gw = await mesh.connect('mesh-gateway');
    await gw.until(
      (e) =>
        e.names('type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment').length ===
          1 && e.names('type.googleapis.com/envoy.config.listener.v3.Listener').length === 2,
      'gateway config',
    );
    await gw.settle();
    expect(gw.names('type.googleapis.com/envoy.config.listener.v3.Listener').sort()).toEqual([
      'default:127.0.0.1:8443',
      'wan:192.0.2.10:443',
    ]);
    await checkProxy('mesh-gateway-bind-tagged-addresses', mesh, gw, 'mesh-gateway');
  });

  it('leaves no orphaned golden files', () => {
    expect(orphanedGoldens('mesh')).toEqual([]);
  });
});
