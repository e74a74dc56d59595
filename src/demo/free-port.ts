/**
 * Ports for listeners Envoy will bind: they must be registered before Envoy gets its config, so
 * the demo picks them first. A port from 20000-31999 that is free on 127.0.0.1 now: below Linux's
 * default ephemeral range (32768-60999), so an outgoing connection will not take it before Envoy
 * binds it. `taken` keeps one run from handing out the same port twice.
 *
 * Free now is not enough between processes that pick at the same time (two demos, test files
 * running in parallel): both can find a port free before either Envoy binds it, and Envoy binds
 * its listeners with SO_REUSEPORT (`enable_reuse_port` defaults to true on Linux), so the second
 * bind does not fail. The kernel then splits new connections between the two Envoys; those that
 * land on the wrong one are closed before their TLS handshake ends, and a client sees, now and
 * then, "upstream connect error ... reset reason: remote connection failure". So each pick is
 * also claimed for as long as this process lives, by an abstract Unix socket named after the port:
 * one process at a time can hold it, in the port's own scope (the network namespace), and the
 * kernel releases it when the process exits, however it exits.
 */
import { createServer, type Server } from 'node:net';

export async function freePort(taken: Set<number>): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (taken.has(port)) continue;
    const claim = await claimPort(port);
    if (!claim) continue;
    const probe = createServer();
    if ((await listen(probe, { port, host: '127.0.0.1' })) !== undefined) {
      claim.release();
      continue;
    }
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    taken.add(port);
    return port;
  }
  throw new Error('no free port in 20000-31999 on 127.0.0.1');
}

/** Claims held by this process: open (unref'd, so they keep nothing alive) until it exits. */
const claims = new Set<Server>();

/**
 * Claims `port` for this process; undefined when another process (or this one) holds it. Without
 * abstract Unix sockets (not Linux) the claim is a no-op that always succeeds.
 */
export async function claimPort(port: number): Promise<{ release(): void } | undefined> {
  if (process.platform !== 'linux') return { release: () => undefined };
  const server = createServer();
  const error = await listen(server, { path: `\0isthmus-port-${port}` });
  if (error === 'EADDRINUSE') return undefined;
  if (error !== undefined) throw new Error(`claiming port ${port}: ${error}`);
  server.unref();
  claims.add(server);
  return {
    release: () => {
      claims.delete(server);
      server.close();
    },
  };
}

/** Listens; undefined once listening, else the error's code. */
function listen(
  server: Server,
  at: { readonly port: number; readonly host: string } | { readonly path: string },
): Promise<string | undefined> {
  return new Promise((resolve) => {
    server.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
    server.listen(at, () => resolve(undefined));
  });
}
