/**
 * Ports for listeners Envoy will bind: they must be registered before Envoy gets its config, so
 * the demo picks them first. A port from 20000-31999 that is free on 127.0.0.1 now: below Linux's
 * default ephemeral range (32768-60999), so an outgoing connection will not take it before Envoy
 * binds it. `taken` keeps one run from handing out the same port twice.
 */
import { createServer } from 'node:net';

export async function freePort(taken: Set<number>): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (taken.has(port)) continue;
    const server = createServer();
    const ok = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (!ok) continue;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    taken.add(port);
    return port;
  }
  throw new Error('no free port in 20000-31999 on 127.0.0.1');
}
