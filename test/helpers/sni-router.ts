/**
 * A stand-in for a mesh gateway's SNI routing, for control-plane tests without Envoy: it reads the
 * TLS ClientHello's server name, connects to the address routed for it and passes the bytes
 * through untouched (TLS ends at the server, as through a real gateway). It counts connections
 * by name, so a test can show that traffic went through it.
 */
import { type AddressInfo, type Server, type Socket, connect, createServer } from 'node:net';

export interface SniRouter {
  readonly port: number;
  /** Where each server name goes (`host:port`), changeable at any time. */
  readonly routes: Map<string, string>;
  /** Connections routed, by server name. */
  readonly routed: Map<string, number>;
  close(): Promise<void>;
}

export async function startSniRouter(): Promise<SniRouter> {
  const routes = new Map<string, string>();
  const routed = new Map<string, number>();
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => client.destroy());
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const name = serverNameOf(head);
      if (name === 'incomplete' && head.length < 16_384) return;
      client.off('data', onData);
      const target = typeof name === 'string' ? routes.get(name) : undefined;
      if (!target || name === 'incomplete' || name === undefined) return void client.destroy();
      routed.set(name, (routed.get(name) ?? 0) + 1);
      const [host, port] = [target.slice(0, target.lastIndexOf(':')), target.split(':').at(-1)];
      const upstream = connect({ host, port: Number(port) });
      sockets.add(upstream);
      upstream.on('close', () => sockets.delete(upstream));
      upstream.on('error', () => client.destroy());
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
      upstream.write(head);
      client.pipe(upstream);
      upstream.pipe(client);
    };
    client.on('data', onData);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    routes,
    routed,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * The SNI of a TLS ClientHello record (RFC 8446 §4.1.2, RFC 6066 §3): 'incomplete' until the
 * whole record has arrived, undefined when it is not a ClientHello or names no server.
 */
function serverNameOf(buf: Buffer): string | 'incomplete' | undefined {
  if (buf.length < 5) return 'incomplete';
  if (buf[0] !== 0x16) return undefined;
  const end = 5 + buf.readUInt16BE(3);
  if (buf.length < end) return 'incomplete';
  let at = 5 + 4 + 2 + 32; // handshake header, client version, random
  at += 1 + buf.readUInt8(at); // session id
  at += 2 + buf.readUInt16BE(at); // cipher suites
  at += 1 + buf.readUInt8(at); // compression methods
  const extensionsEnd = at + 2 + buf.readUInt16BE(at);
  at += 2;
  while (at + 4 <= extensionsEnd && at + 4 <= end) {
    const type = buf.readUInt16BE(at);
    const len = buf.readUInt16BE(at + 2);
    if (type === 0) {
      // server_name_list: length, then entries of type (0 = host_name), length, name
      const nameLen = buf.readUInt16BE(at + 4 + 3);
      return buf.toString('ascii', at + 4 + 5, at + 4 + 5 + nameLen);
    }
    at += 4 + len;
  }
  return undefined;
}
