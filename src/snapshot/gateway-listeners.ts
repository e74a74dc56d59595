import type { GatewayBindAddress, ServiceInstance } from '../catalog/types.js';
import { meshGatewayListenerName } from '../mesh/names.js';
import type { GatewayChainIR, GatewayListenerIR } from './types.js';

/**
 * Which side of a mesh gateway a chain serves (docs/architecture.md §5 "What a gateway routes"):
 * `wan` what peers and other datacenters dial, `lan` what our own sidecars and server dial, `both`
 * either.
 */
export type GatewaySide = 'wan' | 'lan' | 'both';

export interface SidedChain {
  readonly side: GatewaySide;
  readonly chain: GatewayChainIR;
}

/**
 * A gateway's listeners, one per bind address, each with the chains of its side. A listener with
 * no chain is still sent, so the port stays bound whatever is exported (the generator gives it a
 * default chain that closes every connection).
 */
export function gatewayListeners(
  gateway: ServiceInstance,
  routes: readonly SidedChain[],
): GatewayListenerIR[] {
  return gatewayBinds(gateway).map((b) => ({
    name: meshGatewayListenerName(b.address, b.port, b.name),
    address: b.address,
    port: b.port,
    chains: chainsOfListener(b.name, routes),
  }));
}

/**
 * The chains of one listener: the `wan` listener (`envoy_gateway_bind_tagged_addresses`) serves
 * the WAN side only, `lan` the LAN side only; any other (`default`, a `bind_addresses` entry) takes
 * both, since one address may be what sidecars and peers dial alike.
 */
function chainsOfListener(bind: string, routes: readonly SidedChain[]): GatewayChainIR[] {
  const only = bind === 'wan' || bind === 'lan' ? bind : undefined;
  return routes.filter((r) => !only || r.side === 'both' || r.side === only).map((r) => r.chain);
}

/**
 * Where the gateway's listeners bind, as Consul does it (`listenersFromSnapshotGateway`): `default`
 * (the LAN address, else the service address) unless `no_default_bind`; `lan` and `wan` with
 * `bind_tagged_addresses`; each `bind_addresses` entry by its name. Sorted by name, and where two
 * share an address and port the first one is kept: Envoy rejects a second listener on an address.
 */
function gatewayBinds(gateway: ServiceInstance): GatewayBindAddress[] {
  const cfg = gateway.gatewayConfig;
  const all: GatewayBindAddress[] = [];
  if (!cfg?.noDefaultBind) {
    const lan = gateway.taggedAddresses.lan;
    all.push({
      name: 'default',
      address: lan?.address || gateway.address || '0.0.0.0',
      port: lan?.port || gateway.port,
    });
  }
  if (cfg?.bindTaggedAddresses) {
    for (const name of ['lan', 'wan'] as const) {
      const tagged = gateway.taggedAddresses[name];
      if (tagged) all.push({ name, address: tagged.address, port: tagged.port });
    }
  }
  all.push(...(cfg?.bindAddresses ?? []));
  const seen = new Set<string>();
  return all
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .filter((b) => {
      const key = `${b.address}:${b.port}`;
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    });
}
