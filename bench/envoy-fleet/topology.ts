/**
 * What the benchmark registers: a service `api` with a few instances, and N services `web-<i>`,
 * each with a sidecar whose one upstream is `api`, registered as the real-Envoy tests register
 * theirs (withSidecar, Consul's JSON). Only the `web` sidecars run an Envoy; `api`'s sidecars are
 * addresses in their load assignments that nothing listens on.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { withSidecar } from '../../test/envoy/mesh.js';
import type { MeshNode } from '../../test/helpers/mesh-server.js';

export const apiService = 'api';
export const sidecarId = (i: number) => `web-${i}-sidecar-proxy`;

/**
 * Ports that are only addresses in the catalog (apps, `api`'s sidecars): never bound, so any
 * value will do as long as each is used once. Counting up from here keeps them unique.
 */
export class AddressPorts {
  private next = 1_024;
  take(): number {
    if (this.next > 19_999) throw new Error('out of address-only ports: use fewer Envoys');
    return this.next++;
  }
}

/**
 * Ports an Envoy binds (a sidecar's public listener, its upstream's local bind port), taken above
 * Linux's ephemeral range: outgoing connections never take them, and the test suites pick theirs
 * in 20000–31999 (listenPort), so other jobs on a shared machine do not race the fleet for them.
 */
export async function listenerPorts(count: number): Promise<number[]> {
  const upper = Number(
    readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[1] ?? 60_999,
  );
  const ports: number[] = [];
  for (let port = upper + 1; port <= 65_535 && ports.length < count; port++)
    if (await isFree(port)) ports.push(port);
  if (ports.length < count)
    throw new Error(
      `only ${ports.length} free ports above the ephemeral range (${upper}), ${count} needed: use fewer Envoys`,
    );
  return ports;
}

function isFree(port: number): Promise<boolean> {
  const server = createServer();
  return new Promise((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

export interface Topology {
  /** Each `api` instance's app port and the port of its sidecar now (its load assignment entry). */
  readonly api: { readonly appPort: number; sidecarPort: number }[];
  /** The proxy IDs of the `web` sidecars, in order. */
  readonly sidecars: readonly string[];
}

/**
 * Registers `api` × `apiInstances` and `web-0` … `web-<n-1>`, each web sidecar with its public
 * port and its upstream's local bind port from `ports` (two per sidecar).
 */
export async function registerTopology(
  node: MeshNode,
  n: number,
  apiInstances: number,
  addresses: AddressPorts,
  ports: readonly number[],
): Promise<Topology> {
  const topology: Topology = {
    api: [],
    sidecars: Array.from({ length: n }, (_, i) => sidecarId(i)),
  };
  for (let i = 0; i < apiInstances; i++) {
    topology.api.push({ appPort: addresses.take(), sidecarPort: addresses.take() });
    await registerApi(node, topology, i);
  }
  for (let i = 0; i < n; i++) {
    const [publicPort, upstreamPort] = [ports[2 * i]!, ports[2 * i + 1]!];
    await node.register(
      withSidecar(`web-${i}`, addresses.take(), publicPort, [
        { DestinationName: apiService, LocalBindPort: upstreamPort },
      ]),
    );
  }
  return topology;
}

/** Re-registers `api-<i>` with its sidecar on `sidecarPort`: one endpoint of `api` moves. */
export async function moveApiInstance(
  node: MeshNode,
  topology: Topology,
  i: number,
  sidecarPort: number,
): Promise<void> {
  topology.api[i]!.sidecarPort = sidecarPort;
  await registerApi(node, topology, i);
}

function registerApi(node: MeshNode, topology: Topology, i: number): Promise<void> {
  const { appPort, sidecarPort } = topology.api[i]!;
  return node.register(withSidecar(`api-${i}`, appPort, sidecarPort, [], { Name: apiService }));
}
