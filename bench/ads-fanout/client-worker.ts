/**
 * A client worker process of the fan-out benchmark (forked by main.ts through bin/run-ts.js).
 * It opens the xDS streams (or raw streams) the parent asks for and reports, in batches over IPC,
 * the wall-clock time at which each proxy finished each step. Batching delays the reports, never
 * the timestamps in them.
 */
import * as grpc from '@grpc/grpc-js';
import { DeltaProxy, SotwProxy, type ProxyHooks } from './proxies.js';
import {
  rawPath,
  wallClockMs,
  type ConnectionMode,
  type FromWorker,
  type ReportKey,
  type ToWorker,
} from './protocol.js';

const identity = (b: Buffer): Buffer => b;
const envoyWindowBytes = 256 * 1024 * 1024;

/** Collects timestamps per report key and sends them a few milliseconds later in one message. */
class Reporter {
  private readonly pending = new Map<ReportKey, number[]>();
  private timer: NodeJS.Timeout | undefined;

  add(key: ReportKey, at: number): void {
    let times = this.pending.get(key);
    if (!times) this.pending.set(key, (times = []));
    times.push(at);
    this.timer ??= setTimeout(() => this.flush(), 5);
  }

  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    for (const [key, times] of this.pending) send({ kind: 'report', key, times });
    this.pending.clear();
  }
}

function send(msg: FromWorker): void {
  process.send?.(msg);
}

const reporter = new Reporter();
const xdsClients: grpc.Client[] = [];
/** Each proxy's client, in the order of the proxies (the shared one repeated with `--conn worker`). */
let proxyClients: grpc.Client[] = [];
let proxies: { close(): void }[] = [];
let rawStreams: grpc.ClientDuplexStream<Buffer, Buffer>[] = [];
/** The answer raw streams write to each message they receive (ACK mode), if any. */
let rawAck: Buffer | undefined;
let closingRaw = false;

/**
 * The report key of message `n` (a round): the same string for every stream, so not built per
 * message.
 */
function keyCache<P extends 'acked' | 'raw'>(prefix: P): (n: number) => `${P}:${number}` {
  const keys: `${P}:${number}`[] = [];
  return (n) => (keys[n] ??= `${prefix}:${n}`);
}
const ackedKey = keyCache('acked');
const rawKey = keyCache('raw');

const hooks: ProxyHooks = {
  synced: (at) => reporter.add('synced', at),
  acked: (round, at) => reporter.add(ackedKey(round), at),
  failed: (message) => send({ kind: 'error', message }),
};

/** One client per proxy (its own TCP connection, like an Envoy) or one shared by the worker. */
function clientFactory(
  address: string,
  conn: ConnectionMode,
  clients: grpc.Client[],
): () => grpc.Client {
  const make = () => {
    const c = new grpc.Client(address, grpc.credentials.createInsecure(), {
      'grpc.use_local_subchannel_pool': 1,
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
      // Envoy does not buffer what it sent for retries; grpc-js would, per message.
      'grpc.enable_retries': 0,
      // Envoy's HTTP/2 receive windows (initial_stream_window_size and
      // initial_connection_window_size both default to 256 MiB). With HTTP/2's 64 KiB default, a
      // connection shared by a worker's thousands of streams stalls the server every 64 KiB of a
      // round until the busy client process sends a WINDOW_UPDATE.
      'grpc-node.flow_control_window': envoyWindowBytes,
    });
    clients.push(c);
    return c;
  };
  if (conn === 'proxy') return make;
  const shared = make();
  return () => shared;
}

/**
 * Opens streams a few at a time so connection setup does not overflow the server's accept backlog.
 */
async function inBatches(count: number, open: (i: number) => void): Promise<void> {
  for (let i = 0; i < count; i++) {
    open(i);
    if (i % 25 === 24) await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * Connects the clients (at once, each retrying with grpc-js's backoff) and resolves when all are
 * ready. A proxy's stream starts on a connected channel: a connection reset while thousands are
 * set up at once (the server's accept queue) is retried, not the end of the stream.
 */
function connected(clients: readonly grpc.Client[], timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return Promise.all(
    clients.map(
      (c) =>
        new Promise<void>((resolve, reject) =>
          c.waitForReady(deadline, (err) => (err ? reject(err) : resolve())),
        ),
    ),
  ).then(() => undefined);
}

function closeClients(clients: grpc.Client[]): void {
  for (const c of clients.splice(0)) c.close();
}

async function handle(msg: ToWorker): Promise<void> {
  switch (msg.kind) {
    case 'connect-xds': {
      const client = clientFactory(msg.address, msg.conn, xdsClients);
      const ProxyClass = msg.api === 'delta' ? DeltaProxy : SotwProxy;
      const ids = msg.ids;
      for (let from = 0; from < ids.length; from += 25) {
        const batch = ids.slice(from, from + 25).map((id) => ({ id, client: client() }));
        await connected(batch.map((p) => p.client));
        for (const { id, client: c } of batch) {
          proxyClients.push(c);
          proxies.push(new ProxyClass(c, `proxy-${id}`, msg.expected, hooks).start());
        }
      }
      return;
    }
    case 'close-xds':
      for (const p of proxies) p.close();
      proxies = [];
      proxyClients = [];
      closeClients(xdsClients);
      reporter.add('closed', wallClockMs());
      reporter.flush();
      return;
    case 'connect-raw':
      closingRaw = false;
      await openRaw();
      return;
    case 'cpu': {
      const u = process.cpuUsage();
      reporter.add(msg.key, (u.user + u.system) / 1000);
      reporter.flush();
      return;
    }
    case 'raw-ack':
      rawAck = msg.bytes > 0 ? Buffer.alloc(msg.bytes, 0x0a) : undefined;
      reporter.add('raw-ack', wallClockMs());
      reporter.flush();
      return;
    case 'close-raw':
      closingRaw = true;
      for (const s of rawStreams) s.cancel();
      rawStreams = [];
      reporter.add('closed', wallClockMs());
      reporter.flush();
      return;
  }
}

/**
 * One raw stream per proxy, on the proxy's own client: the xDS server serves the raw method too, so
 * the raw reference writes over the very connections the push path does (and a connection per
 * proxy needs no second socket per proxy in the server). Raw streams announce themselves with one
 * byte, then count what they receive: message k is round k.
 */
async function openRaw(): Promise<void> {
  await inBatches(proxyClients.length, (i) => {
    const stream = proxyClients[i]!.makeBidiStreamRequest<Buffer, Buffer>(
      rawPath,
      identity,
      identity,
    );
    let received = 0;
    stream.on('data', () => {
      // In ACK mode the stream answers like a proxy ACKing, and the time is taken after that write,
      // as a proxy's is.
      if (rawAck) stream.write(rawAck);
      reporter.add(rawKey(++received), wallClockMs());
    });
    stream.on('error', (err: Error) => {
      if (!closingRaw) send({ kind: 'error', message: `raw stream failed: ${err.message}` });
    });
    stream.write(Buffer.from([1]));
    rawStreams.push(stream);
  });
}

process.on('message', (msg: ToWorker) => {
  handle(msg).catch((err: unknown) =>
    send({ kind: 'error', message: String((err as Error)?.stack ?? err) }),
  );
});
// The parent owns this process: when it goes away (even killed), so do we.
process.on('disconnect', () => process.exit(0));
reporter.add('ready', wallClockMs());
reporter.flush();
