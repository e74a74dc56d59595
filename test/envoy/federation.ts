/**
 * WAN-federated datacenters for real-Envoy tests (docs/architecture.md §6c): a datacenter is a real
 * `isthmus server` process whose federation port binds its own loopback address, and a real Envoy
 * mesh gateway that exposes its servers (`Meta consul-wan-federation=1`) with separate LAN and WAN
 * listeners. A secondary knows nothing of the primary but its gateway's WAN port.
 */
import { X509Certificate } from 'node:crypto';
import { startMeshProcess } from '../helpers/mesh-server.js';
import { listenPort } from './apps.js';
import { type ConfigDump, dumpSection } from './harness.js';
import { type MeshProcess, type PlacedProxy, startCluster, startPlacedProxy } from './mesh.js';

/** A mesh gateway exposing its datacenter's servers, with separate LAN and WAN listeners. */
export function federationGateway(id: string, ports: { lan: number; wan: number }) {
  return {
    ID: id,
    Name: 'mesh-gateway',
    Kind: 'mesh-gateway',
    Address: '127.0.0.1',
    Port: ports.lan,
    Meta: { 'consul-wan-federation': '1' },
    TaggedAddresses: {
      lan: { Address: '127.0.0.1', Port: ports.lan },
      wan: { Address: '127.0.0.1', Port: ports.wan },
    },
    Proxy: {
      Config: { envoy_gateway_bind_tagged_addresses: true, envoy_gateway_no_default_bind: true },
    },
  };
}

export interface FederatedDatacenterOptions {
  readonly primaryDatacenter: string;
  /** The loopback address the server's federation port binds (127.0.<n>.1); default 127.0.0.1. */
  readonly loopback?: string;
  readonly secretFile: string;
  /** Default: the server's own default node name. */
  readonly nodeName?: string;
  /** A secondary's `--primary-gateways`: the primary gateway's WAN port on 127.0.0.1. */
  readonly primaryGatewayWanPort?: number;
  /** More server flags (camelCase, as `startCluster`). */
  readonly flags?: Record<string, string>;
}

export interface FederatedDatacenter {
  readonly server: MeshProcess;
  /** The exposing gateway's Envoy (LIVE), with its server. */
  readonly gateway: PlacedProxy;
  readonly gatewayPorts: { readonly lan: number; readonly wan: number };
  readonly federationPort: number;
}

/** A datacenter's server flags, its federation port `port` (0: any) on its loopback address. */
function serverFlags(opts: FederatedDatacenterOptions, port: number): Record<string, string> {
  return {
    primaryDatacenter: opts.primaryDatacenter,
    federationAddr: `${opts.loopback ?? '127.0.0.1'}:${port}`,
    federationSecretFile: opts.secretFile,
    ...(opts.nodeName === undefined ? {} : { nodeName: opts.nodeName }),
    ...(opts.primaryGatewayWanPort === undefined
      ? {}
      : { primaryGateways: `127.0.0.1:${opts.primaryGatewayWanPort}` }),
    ...opts.flags,
  };
}

/** Starts a datacenter's server and its exposing gateway `gw-<dc>` (registered, Envoy LIVE). */
export async function startFederatedDatacenter(
  dc: string,
  opts: FederatedDatacenterOptions,
): Promise<FederatedDatacenter> {
  const server = await startCluster(dc, serverFlags(opts, 0));
  const gatewayPorts = { lan: await listenPort(), wan: await listenPort() };
  await server.register(federationGateway(`gw-${dc}`, gatewayPorts));
  const gateway = await startPlacedProxy(server, `gw-${dc}`, {
    kind: 'mesh-gateway',
    datacenter: dc,
  });
  const federationPort = Number(server.proc.started.federationPort);
  return { server, gateway, gatewayPorts, federationPort };
}

/**
 * Starts a stopped datacenter's server (`old`, started with `opts`) again on its data dir and the
 * same ports, so its Envoys (which keep their bootstrap) and its gateway's routes find it where
 * they did. The gateway and the Envoys are not touched.
 */
export function restartFederatedServer(
  dc: string,
  old: MeshProcess,
  opts: FederatedDatacenterOptions,
): Promise<MeshProcess> {
  return startMeshProcess(
    {
      datacenter: dc,
      ...serverFlags(opts, Number(old.proc.started.federationPort)),
      httpAddr: `127.0.0.1:${old.proc.httpPort}`,
      xdsAddr: `127.0.0.1:${old.proc.xdsPort}`,
      peeringAddr: `127.0.0.1:${old.proc.peeringPort}`,
    },
    { dataDir: old.proc.dataDir },
  );
}

const pemBlocks = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Every leaf certificate chain an Envoy holds (SDS `tls_certificate`s), leaf first. */
export function leafChains(dump: ConfigDump): X509Certificate[][] {
  const secrets = (dumpSection(dump, 'SecretsConfigDump')?.dynamic_active_secrets ?? []) as {
    secret?: { tls_certificate?: { certificate_chain?: { inline_string?: string } } };
  }[];
  return secrets
    .map((x) => x.secret?.tls_certificate?.certificate_chain?.inline_string)
    .filter((c): c is string => c !== undefined)
    .map((c) => (c.match(pemBlocks) ?? []).map((pem) => new X509Certificate(pem)));
}

/** Whether a chain's leaf is signed by `root` directly or through the chain's intermediate. */
export function chainsTo(chain: readonly X509Certificate[], root: X509Certificate): boolean {
  const [leaf, intermediate] = chain;
  if (!leaf) return false;
  if (!intermediate) return leaf.verify(root.publicKey);
  return leaf.verify(intermediate.publicKey) && intermediate.verify(root.publicKey);
}
