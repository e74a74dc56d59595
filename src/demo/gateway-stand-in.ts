/**
 * A TCP stand-in for an Envoy mesh gateway, driven by the gateway's pushed config: it reads the SNI
 * of each ClientHello (Envoy's tls_inspector), picks the listener filter chain whose server_names
 * holds it, and passes the bytes untouched (TLS is end to end) to the first endpoint the gateway
 * received over EDS for that chain's tcp_proxy cluster. No chain for the name: the connection is
 * closed, as Envoy does.
 */
import net from 'node:net';
import type { XdsProbe } from '../probe/xds-probe.js';
import { TypeUrl } from '../xds/types.js';
import { maxClientHelloBytes, parseClientHelloSni } from './client-hello.js';

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

export interface RoutedConnection {
  readonly serverName: string;
  readonly target: HostPort | undefined;
}

export interface GatewayStandIn {
  readonly address: HostPort;
  /** Every connection's SNI and where it went (undefined: refused), in order. */
  readonly routed: RoutedConnection[];
  close(): Promise<void>;
}

// biome-ignore lint/suspicious/noExplicitAny: Envoy-style JSON with Any expanded
type Json = any;

/**
 * The endpoint a gateway's config sends `serverName` to: chain → tcp_proxy cluster → first EDS
 * endpoint.
 */
export function chainTarget(gw: XdsProbe, serverName: string): HostPort | undefined {
  for (const name of gw.names(TypeUrl.listener)) {
    const listener: Json = JSON.parse(gw.json(TypeUrl.listener, name));
    const chain = (listener.filterChains ?? []).find((c: Json) =>
      (c.filterChainMatch?.serverNames ?? []).includes(serverName),
    );
    const cluster = chain?.filters?.find((f: Json) => f.name === 'envoy.filters.network.tcp_proxy')
      ?.typedConfig?.cluster;
    if (!cluster) continue;
    const cla: Json = JSON.parse(gw.json(TypeUrl.endpoint, cluster) || 'null');
    const sa = cla?.endpoints?.[0]?.lbEndpoints?.[0]?.endpoint?.address?.socketAddress;
    if (sa) return { host: sa.address, port: sa.portValue };
  }
  return undefined;
}

/** Listens on 127.0.0.1:0; `config()` is the gateway's probe once connected (undefined before). */
export async function startGatewayStandIn(
  config: () => XdsProbe | undefined,
): Promise<GatewayStandIn> {
  const sockets = new Set<net.Socket>();
  const routed: RoutedConnection[] = [];
  const track = (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => s.destroy());
  };
  const server = net.createServer((down) => {
    track(down);
    let hello = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      hello = Buffer.concat([hello, chunk]);
      const sni = parseClientHelloSni(hello);
      if (sni.kind === 'more' && hello.length < maxClientHelloBytes) return;
      down.off('data', onData);
      down.pause();
      const serverName = sni.kind === 'sni' ? sni.serverName : '';
      const gw = config();
      const target = gw && serverName ? chainTarget(gw, serverName) : undefined;
      routed.push({ serverName, target });
      if (!target) return void down.destroy();
      const up = net.connect(target.port, target.host);
      track(up);
      up.write(hello);
      down.pipe(up).pipe(down);
      down.resume();
      up.on('close', (hadError) => (hadError ? down.destroy() : down.end()));
      down.on('close', (hadError) => (hadError ? up.destroy() : up.end()));
    };
    down.on('data', onData);
  });
  await new Promise<void>((resolve, reject) =>
    server.once('error', reject).listen(0, '127.0.0.1', resolve),
  );
  const { port } = server.address() as net.AddressInfo;
  return {
    address: { host: '127.0.0.1', port },
    routed,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
