/**
 * A client worker process of the fleet benchmarks (forked by pool.ts through bin/run-ts.js): it
 * plays the proxies the parent names and answers the parent's requests about them.
 */
import * as grpc from '@grpc/grpc-js';
import { FleetProxy, Tally, type ProxyEnv } from './client.js';
import type { Command, Counters, FromWorker, ToWorker } from './protocol.js';

let tally = new Tally();
const env: ProxyEnv = {
  get tally() {
    return tally;
  },
  fail: (message) => send({ id: -1, ok: false, message }),
};
let proxies: FleetProxy[] = [];
const channels: grpc.Client[] = [];

function send(msg: FromWorker): void {
  process.send?.(msg);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function newChannel(address: string): grpc.Client {
  const c = new grpc.Client(address, grpc.credentials.createInsecure(), {
    'grpc.use_local_subchannel_pool': 1,
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
    'grpc.enable_retries': 0,
    // Reconnect soon after the server comes back (grpc-js waits 1 s, then backs off, by default).
    'grpc.initial_reconnect_backoff_ms': 100,
    'grpc.max_reconnect_backoff_ms': 2_000,
  });
  channels.push(c);
  return c;
}

async function handle(command: Command): Promise<unknown> {
  switch (command.kind) {
    case 'connect': {
      let channel: grpc.Client | undefined;
      for (let i = 0; i < command.ids.length; i++) {
        if (i % command.perConnection === 0) channel = newChannel(command.address);
        const proxy = new FleetProxy(command.ids[i]!, channel!, env);
        proxies.push(proxy);
        proxy.open();
        // A few at a time, so connection setup does not overflow the server's accept backlog.
        if (i % 25 === 24) await sleep(5);
      }
      return proxies.length;
    }
    case 'ready-count':
      return proxies.filter((p) => p.connected).length;
    case 'storm': {
      // Each proxy reconnects `times` times at random moments over `overMs`.
      const timers: Promise<void>[] = [];
      for (const p of proxies)
        for (let k = 0; k < command.times; k++)
          timers.push(sleep(Math.random() * command.overMs).then(() => p.reconnect()));
      await Promise.all(timers);
      return proxies.length * command.times;
    }
    case 'all-connected': {
      const deadline = Date.now() + command.timeoutMs;
      while (proxies.some((p) => !p.connected)) {
        if (Date.now() > deadline) {
          const left = proxies.filter((p) => !p.connected).length;
          throw new Error(`${left} proxies still without an answered stream`);
        }
        await sleep(20);
      }
      return proxies.length;
    }
    case 'held':
      return proxies.map((p) => p.state());
    case 'counters': {
      const value: Counters = { ...tally, responses: { ...tally.responses } };
      if (command.reset) tally = new Tally();
      return value;
    }
    case 'cpu': {
      const u = process.cpuUsage();
      return (u.user + u.system) / 1000;
    }
    case 'close':
      for (const p of proxies) p.stop();
      proxies = [];
      for (const c of channels.splice(0)) c.close();
      return 0;
  }
}

process.on('message', (msg: ToWorker) => {
  handle(msg.command).then(
    (value) => send({ id: msg.id, ok: true, value }),
    (err: unknown) =>
      send({ id: msg.id, ok: false, message: String((err as Error)?.stack ?? err) }),
  );
});
// The parent owns this process: when it goes away (even killed), so do we.
process.on('disconnect', () => process.exit(0));
send({ id: 0, ok: true, value: 'ready' });
