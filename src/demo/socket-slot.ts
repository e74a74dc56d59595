/**
 * A TCP port on 127.0.0.1 that is bound before its server exists. A sidecar's public listener
 * address must be registered before the sidecar's config (and so its TLS material) is pushed; the
 * slot takes the port first and hands connections to whatever `serve` installs later (until then
 * they are closed).
 */
import net from 'node:net';

export interface SocketSlot {
  readonly port: number;
  serve(handler: ((socket: net.Socket) => void) | undefined): void;
  close(): Promise<void>;
}

export async function openSocketSlot(): Promise<SocketSlot> {
  let handler: ((socket: net.Socket) => void) | undefined;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    if (handler) handler(socket);
    else socket.destroy();
  });
  await new Promise<void>((resolve, reject) =>
    server.once('error', reject).listen(0, '127.0.0.1', resolve),
  );
  return {
    port: (server.address() as net.AddressInfo).port,
    serve: (h) => (handler = h),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
