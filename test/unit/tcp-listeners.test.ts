import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { TcpListeners } from '../../src/xds/tcp-listeners.js';

/** Connects to host:port and resolves once the listener has handed the socket over. */
async function reach(host: string, port: number, accepted: Socket[]): Promise<void> {
  const before = accepted.length;
  const client = connect({ host, port });
  await new Promise<void>((resolve, reject) => {
    client.once('error', reject);
    client.once('connect', resolve);
  });
  const deadline = Date.now() + 10_000;
  while (accepted.length === before) {
    if (Date.now() > deadline) throw new Error(`no connection handed over from ${host}:${port}`);
    await new Promise((r) => setImmediate(r));
  }
  client.destroy();
}

describe('TcpListeners (the xDS port)', () => {
  const opened: TcpListeners[] = [];
  const accepted: Socket[] = [];
  const onConnection = (s: Socket) => {
    accepted.push(s);
    s.destroy();
  };
  const noError = (err: Error) => {
    throw err;
  };
  afterEach(() => {
    for (const l of opened.splice(0)) l.close();
    accepted.length = 0;
  });

  it('hands every accepted connection over, on the port picked for port 0', async () => {
    const l = await TcpListeners.open({ host: '127.0.0.1', port: 0 }, onConnection, noError);
    opened.push(l);
    expect(l.port).toBeGreaterThan(0);
    await reach('127.0.0.1', l.port, accepted);
    await reach('127.0.0.1', l.port, accepted);
    expect(accepted).toHaveLength(2);
  });

  it('listens on the addresses a name resolves to, all on one port', async () => {
    const l = await TcpListeners.open({ host: 'localhost', port: 0 }, onConnection, noError);
    opened.push(l);
    await reach('127.0.0.1', l.port, accepted);
    expect(accepted).toHaveLength(1);
  });

  it('refuses a port in use with EADDRINUSE, and frees its port when closed', async () => {
    const blocker: Server = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const taken = (blocker.address() as { port: number }).port;
    try {
      await expect(
        TcpListeners.open({ host: '127.0.0.1', port: taken }, onConnection, noError),
      ).rejects.toThrow(/EADDRINUSE/);
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
    const l = await TcpListeners.open({ host: '127.0.0.1', port: taken }, onConnection, noError);
    l.close();
    const again = await TcpListeners.open(
      { host: '127.0.0.1', port: taken },
      onConnection,
      noError,
    );
    opened.push(again);
    expect(again.port).toBe(taken);
  });
});
