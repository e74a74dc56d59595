/**
 * A client worker process of the fan-out benchmark (forked by main.ts through bin/run-ts.js).
 * It opens the xDS streams (or raw streams) the parent asks for and reports, in batches over IPC,
 * the wall-clock time at which each proxy finished each step. Batching delays the reports, never
 * the timestamps in them.
 */
import {
  connectBidi,
  type BidiConnection,
  type BidiStream,
  type ClientKind,
} from '../shared/bidi-client.js';
import { DeltaProxy, SotwProxy, type ProxyHooks } from './proxies.js';
import {
  rawPath,
  wallClockMs,
  type ConnectionMode,
  type FromWorker,
  type ReportKey,
  type ToWorker,
} from './protocol.js';

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
const xdsConnections: BidiConnection[] = [];
/**
 * Each proxy's connection, in the order of the proxies (the shared one repeated with `--conn
 * worker`).
 */
let proxyConnections: BidiConnection[] = [];
let proxies: { close(): void }[] = [];
let rawStreams: BidiStream[] = [];
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

/**
 * One connection per proxy (like an Envoy) or one shared by the worker; `deadline` bounds the
 * connect retries.
 */
function connectionFactory(
  kind: ClientKind,
  address: string,
  conn: ConnectionMode,
  opened: BidiConnection[],
): (deadline: number) => Promise<BidiConnection> {
  const make = async (deadline: number) => {
    const c = await connectBidi(kind, address, deadline);
    opened.push(c);
    return c;
  };
  if (conn === 'proxy') return make;
  let shared: Promise<BidiConnection> | undefined;
  return (deadline) => (shared ??= make(deadline));
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
 * Connects 25 proxies at a time, each retrying with backoff for up to a minute, and starts their
 * streams once all 25 are connected: a connection reset while thousands are set up at once (the
 * server's accept queue) is retried, not the end of a stream.
 */
async function connectProxies(msg: Extract<ToWorker, { kind: 'connect-xds' }>): Promise<void> {
  const connect = connectionFactory(msg.client, msg.address, msg.conn, xdsConnections);
  const ProxyClass = msg.api === 'delta' ? DeltaProxy : SotwProxy;
  for (let from = 0; from < msg.ids.length; from += 25) {
    const batch = msg.ids.slice(from, from + 25);
    const deadline = Date.now() + 60_000;
    const connections = await Promise.all(batch.map(() => connect(deadline)));
    batch.forEach((id, k) => {
      const c = connections[k]!;
      proxyConnections.push(c);
      proxies.push(new ProxyClass(c, `proxy-${id}`, msg.expected, hooks).start());
    });
  }
}

function closeConnections(connections: BidiConnection[]): void {
  for (const c of connections.splice(0)) c.close();
}

async function handle(msg: ToWorker): Promise<void> {
  switch (msg.kind) {
    case 'connect-xds':
      await connectProxies(msg);
      return;
    case 'close-xds':
      for (const p of proxies) p.close();
      proxies = [];
      proxyConnections = [];
      closeConnections(xdsConnections);
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
 * One raw stream per proxy, on the proxy's own connection (so with the same `--client`): the xDS
 * server serves the raw method too, so
 * the raw reference writes over the very connections the push path does (and a connection per
 * proxy needs no second socket per proxy in the server). Raw streams announce themselves with one
 * byte, then count what they receive: message k is round k.
 */
async function openRaw(): Promise<void> {
  await inBatches(proxyConnections.length, (i) => {
    const stream = proxyConnections[i]!.stream(rawPath);
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
