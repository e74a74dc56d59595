import { lookup } from 'node:dns/promises';
import { type AddressInfo, createServer, isIP, type Server, type Socket } from 'node:net';
import type { HostPort } from '../config/host-port.js';

/**
 * How many connections the kernel may queue for the xDS port before the server accepts them.
 * grpc-js listens with Node's default of 511: when a fleet reconnects at once (a restart with
 * thousands of proxies), the queue overflows while the event loop sets up the connections it
 * accepted, the kernel drops the SYNs beyond it, and each of those clients waits out TCP's SYN
 * retransmission (1 s, then 3 s, 7 s, …) before it is even seen. That made a restart with 4,000
 * proxies take 16–26 s and one with 10,000 not finish in 120 s (issue 14, bench:delta-restart).
 * Linux caps the number at `net.core.somaxconn` (4096 since 5.4), so this asks for the most the
 * host allows.
 */
export const acceptBacklog = 65_535;

/**
 * The listening sockets of the xDS port: one per address of the host (a name such as `localhost`
 * may resolve to IPv4 and IPv6, as grpc-js binds them), each handing its connections to gRPC
 * (grpc-js `createConnectionInjector`, which runs TLS and HTTP/2 over them).
 */
export class TcpListeners {
  private constructor(
    private readonly servers: readonly Server[],
    readonly port: number,
  ) {}

  /**
   * Listens on every address of `addr.host` (port 0 picks a free port, the same for all) and
   * resolves once at least one listens; rejects with the first error when none does.
   * `onError` hears errors after that (an accept that fails for lack of descriptors).
   */
  static async open(
    addr: HostPort,
    onConnection: (socket: Socket) => void,
    onError: (err: Error) => void,
  ): Promise<TcpListeners> {
    const hosts = isIP(addr.host)
      ? [addr.host]
      : (await lookup(addr.host, { all: true })).map((a) => a.address);
    const servers: Server[] = [];
    let port = addr.port;
    let firstError: Error | undefined;
    for (const host of hosts) {
      const server = createServer(onConnection);
      try {
        port = await listenOn(server, host, port);
        server.on('error', onError);
        servers.push(server);
      } catch (err) {
        firstError ??= err as Error;
      }
    }
    if (servers.length === 0) throw firstError ?? new Error(`${addr.host} has no address`);
    return new TcpListeners(servers, port);
  }

  /** Stops accepting connections; those accepted stay open. */
  close(): void {
    for (const server of this.servers) server.close();
  }
}

function listenOn(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, backlog: acceptBacklog }, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}
