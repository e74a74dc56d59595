/**
 * Traffic that keeps running while a test changes the mesh: a load loop of HTTP/1.1 requests (over
 * kept-alive connections and over a new connection each) that counts what answered and what failed
 * per named phase, and long-lived connections (WebSocket, TCP) that exchange a message every so
 * often and record when and how they ended. Every request and exchange has a deadline, so a hang
 * is counted as a failure, never waited out.
 */
import { Agent, request as httpRequest } from 'node:http';
import { type Socket, connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { WebSocket } from 'ws';
import { waitFor, withDeadline } from '../helpers/wait.js';

/**
 * One request's outcome: `app` is who answered (200 with an app's `Seen`), else `failure` says what
 * happened.
 */
export interface Outcome {
  readonly at: number;
  /** Sent over a connection the client kept alive (true) or over a new one (false). */
  readonly keepAlive: boolean;
  readonly app?: string;
  readonly failure?: string;
}

export interface PhaseCounts {
  readonly ok: number;
  readonly failed: number;
  /** Successful answers per app. */
  readonly byApp: Readonly<Record<string, number>>;
  /** Failures by kind (`HTTP 503`, `ECONNREFUSED`, `timeout`, …) with their count. */
  readonly failures: Readonly<Record<string, number>>;
  /** Every outcome of the phase, in order. */
  readonly outcomes: readonly Outcome[];
}

export interface LoadLoopOptions {
  readonly path?: string;
  /** Workers that reuse one kept-alive connection each (default 1). */
  readonly keepAliveWorkers?: number;
  /** Workers that open a new connection for every request (default 1). */
  readonly freshWorkers?: number;
  /**
   * Pause between a worker's requests, to keep the load modest on shared machines (default 20 ms).
   */
  readonly pauseMs?: number;
  /** Deadline of one request; longer counts as a failure (`timeout`). Default 10 s. */
  readonly requestTimeoutMs?: number;
}

/** Summarizes outcomes: successes per app, failures per kind. */
export function countOutcomes(outcomes: readonly Outcome[]): PhaseCounts {
  const byApp: Record<string, number> = {};
  const failures: Record<string, number> = {};
  for (const o of outcomes) {
    if (o.app !== undefined) byApp[o.app] = (byApp[o.app] ?? 0) + 1;
    else failures[o.failure!] = (failures[o.failure!] ?? 0) + 1;
  }
  const failed = outcomes.filter((o) => o.app === undefined).length;
  return { ok: outcomes.length - failed, failed, byApp, failures, outcomes };
}

/**
 * Requests to 127.0.0.1:`port` in a loop from a few workers until stopped. `phase(name)` starts a
 * new bucket; outcomes of requests that complete after it go there.
 */
export class LoadLoop {
  private readonly phases = new Map<string, Outcome[]>();
  private current: Outcome[] = [];
  private running = true;
  private readonly agents: Agent[] = [];
  private readonly workers: Promise<void>[] = [];
  private readonly opts: Required<LoadLoopOptions>;

  constructor(
    private readonly port: number,
    opts: LoadLoopOptions = {},
  ) {
    this.opts = {
      path: '/load',
      keepAliveWorkers: 1,
      freshWorkers: 1,
      pauseMs: 20,
      requestTimeoutMs: 10_000,
      ...opts,
    };
    this.phase('start');
    for (let i = 0; i < this.opts.keepAliveWorkers; i++) {
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      this.agents.push(agent);
      this.workers.push(this.work(agent));
    }
    for (let i = 0; i < this.opts.freshWorkers; i++) this.workers.push(this.work(undefined));
  }

  /** Starts recording into a new phase (and returns its name). */
  phase(name: string): string {
    if (this.phases.has(name)) throw new Error(`phase ${name} was already recorded`);
    this.current = [];
    this.phases.set(name, this.current);
    return name;
  }

  counts(name: string): PhaseCounts {
    const outcomes = this.phases.get(name);
    if (!outcomes) throw new Error(`no phase ${name}`);
    return countOutcomes(outcomes);
  }

  /**
   * Waits until the current phase holds `n` successful answers (from `app`, when given) of each
   * kind of connection, and resolves with the phase's counts.
   */
  async waitForSuccesses(
    n: number,
    opts: { app?: string; timeoutMs?: number } = {},
  ): Promise<PhaseCounts> {
    const bucket = this.current;
    const ok = (keepAlive: boolean) =>
      bucket.filter(
        (o) =>
          o.keepAlive === keepAlive &&
          o.app !== undefined &&
          (opts.app === undefined || o.app === opts.app),
      ).length;
    const wantKeepAlive = this.opts.keepAliveWorkers > 0 ? n : 0;
    const wantFresh = this.opts.freshWorkers > 0 ? n : 0;
    await waitFor(() => ok(true) >= wantKeepAlive && ok(false) >= wantFresh, {
      timeoutMs: opts.timeoutMs ?? 60_000,
      intervalMs: 50,
      what: `${n} answers${opts.app ? ` from ${opts.app}` : ''} over kept-alive and new connections (so far: ${JSON.stringify(countOutcomes(bucket).byApp)}, failures ${JSON.stringify(countOutcomes(bucket).failures)})`,
    });
    return countOutcomes(bucket);
  }

  /** Waits until the current phase holds `n` failures (e.g. while a service is unexported). */
  async waitForFailures(n: number, timeoutMs = 60_000): Promise<PhaseCounts> {
    const bucket = this.current;
    await waitFor(() => countOutcomes(bucket).failed >= n, {
      timeoutMs,
      intervalMs: 50,
      what: `${n} failed requests (so far ${JSON.stringify(countOutcomes(bucket))})`,
    });
    return countOutcomes(bucket);
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.workers);
    for (const a of this.agents) a.destroy();
  }

  private async work(agent: Agent | undefined): Promise<void> {
    while (this.running) {
      const outcome = await this.once(agent);
      // A request that was under way when the phase changed belongs to the phase it completed in.
      this.current.push(outcome);
      if (this.opts.pauseMs > 0)
        await new Promise((resolve) => setTimeout(resolve, this.opts.pauseMs));
    }
  }

  private once(agent: Agent | undefined): Promise<Outcome> {
    const keepAlive = agent !== undefined;
    return new Promise<Outcome>((resolve) => {
      let settled = false;
      const done = (o: Omit<Outcome, 'at' | 'keepAlive'>) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve({ at: Date.now(), keepAlive, ...o });
      };
      const req = httpRequest(
        { host: '127.0.0.1', port: this.port, path: this.opts.path, agent: agent ?? false },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (body += c));
          res.on('error', (err: NodeJS.ErrnoException) =>
            done({ failure: err.code ?? err.message }),
          );
          res.on('end', () => {
            if (res.statusCode !== 200) return done({ failure: `HTTP ${res.statusCode}` });
            const app = appOf(body);
            done(
              app ? { app } : { failure: `HTTP 200 without an app's answer: ${body.slice(0, 80)}` },
            );
          });
        },
      );
      const timer = setTimeout(() => {
        done({ failure: 'timeout' });
        req.destroy();
      }, this.opts.requestTimeoutMs);
      req.on('error', (err: NodeJS.ErrnoException) => done({ failure: err.code ?? err.message }));
      req.end();
    });
  }
}

function appOf(body: string): string | undefined {
  try {
    const v = JSON.parse(body) as { app?: unknown };
    return typeof v.app === 'string' ? v.app : undefined;
  } catch {
    return undefined;
  }
}

/**
 * What happened to a long-lived connection: how many exchanges it made and how it ended, if it did.
 */
export interface LongLivedState {
  readonly exchanges: number;
  /** Set once the connection ended: when, and why (close code, error, or an unanswered message). */
  readonly ended?: { readonly at: number; readonly why: string };
}

/**
 * A connection kept open that sends a message every `intervalMs` and expects its echo within
 * `timeoutMs`; it ends at the first close, error or missing echo. `exchange()` makes one exchange
 * now (it rejects once the connection has ended).
 */
export interface LongLived {
  state(): LongLivedState;
  /** Sends one message and resolves once its echo is back. */
  exchange(): Promise<void>;
  close(): void;
}

interface Transport {
  send(message: string): void;
  onMessage(fn: (text: string) => void): void;
  onEnd(fn: (why: string) => void): void;
  close(): void;
}

function longLived(
  transport: Transport,
  echoOf: (message: string) => string,
  opts: { intervalMs: number; timeoutMs: number },
): LongLived {
  let exchanges = 0;
  let ended: LongLivedState['ended'];
  let seq = 0;
  let received = '';
  const waiting = new Map<
    string,
    { resolve: () => void; reject: (err: Error) => void; timer: NodeJS.Timeout }
  >();
  const end = (why: string) => {
    if (ended) return;
    ended = { at: Date.now(), why };
    clearInterval(ticker);
    for (const w of waiting.values()) {
      clearTimeout(w.timer);
      w.reject(new Error(`connection ended: ${why}`));
    }
    waiting.clear();
    transport.close();
  };
  transport.onEnd(end);
  transport.onMessage((text) => {
    received += text;
    for (const [expected, w] of waiting) {
      const i = received.indexOf(expected);
      if (i < 0) continue;
      received = received.slice(i + expected.length);
      clearTimeout(w.timer);
      waiting.delete(expected);
      exchanges++;
      w.resolve();
    }
  });
  const exchange = () =>
    new Promise<void>((resolve, reject) => {
      if (ended) return reject(new Error(`connection ended: ${ended.why}`));
      const message = `m${++seq};`;
      const timer = setTimeout(
        () => end(`no echo of ${message} within ${opts.timeoutMs} ms`),
        opts.timeoutMs,
      );
      waiting.set(echoOf(message), { resolve, reject, timer });
      transport.send(message);
    });
  const ticker = setInterval(() => void exchange().catch(() => undefined), opts.intervalMs);
  return {
    state: () => ({ exchanges, ...(ended ? { ended } : {}) }),
    exchange,
    close: () => end('closed by the test'),
  };
}

const longLivedDefaults = { intervalMs: 250, timeoutMs: 10_000 };

/**
 * A WebSocket to 127.0.0.1:`port` (an HTTP app echoing `<app>:<message>`), open once this resolves.
 */
export async function openWebSocket(
  port: number,
  app: string,
  opts = longLivedDefaults,
): Promise<LongLived> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/long-lived`);
  // A refused connection ends in an error, then CLOSED: the wait below reports it.
  ws.on('error', () => undefined);
  await waitFor(
    () => {
      if (ws.readyState === WebSocket.CLOSED) throw new Error('WebSocket closed before it opened');
      return ws.readyState === WebSocket.OPEN;
    },
    { timeoutMs: 20_000, intervalMs: 20, what: `a WebSocket through 127.0.0.1:${port} to open` },
  ).catch((err: unknown) => {
    ws.terminate();
    throw err;
  });
  const transport: Transport = {
    send: (m) => ws.send(m),
    onMessage: (fn) => ws.on('message', (data) => fn(String(data))),
    onEnd: (fn) => {
      ws.on('close', (code) => fn(`WebSocket closed (code ${code})`));
      ws.on('error', (err) => fn(`WebSocket error: ${err.message}`));
    },
    close: () => ws.terminate(),
  };
  return longLived(transport, (m) => `${app}:${m}`, opts);
}

/** A TCP connection to 127.0.0.1:`port` (a TCP echo app), open once the app's greeting arrived. */
export async function openTcp(
  port: number,
  app: string,
  opts = longLivedDefaults,
): Promise<LongLived> {
  const socket: Socket = netConnect(port, '127.0.0.1');
  socket.setEncoding('utf8');
  let greeting = '';
  const onGreeting = (chunk: string) => (greeting += chunk);
  socket.on('data', onGreeting);
  socket.on('error', () => undefined);
  await waitFor(
    () => {
      if (socket.destroyed)
        throw new Error(`TCP connection closed after ${JSON.stringify(greeting)}`);
      return greeting.includes('\n');
    },
    { timeoutMs: 20_000, intervalMs: 20, what: `the greeting of ${app} through 127.0.0.1:${port}` },
  ).catch((err: unknown) => {
    socket.destroy();
    throw err;
  });
  socket.off('data', onGreeting);
  if (greeting.trim() !== app)
    throw new Error(`expected ${app}'s greeting, got ${JSON.stringify(greeting)}`);
  const transport: Transport = {
    send: (m) => socket.write(m),
    onMessage: (fn) => socket.on('data', (chunk: string) => fn(chunk)),
    onEnd: (fn) => {
      socket.on('close', () => fn('TCP connection closed'));
      socket.on('end', () => fn('TCP connection ended by the other side'));
    },
    close: () => socket.destroy(),
  };
  return longLived(transport, (m) => m, opts);
}

/**
 * One HTTP/1.1 request over mTLS with the given client certificate, straight to an Envoy TLS
 * listener (a sidecar's public listener, or a gateway chain chosen by `servername`): `answered`
 * with the status line when Envoy let the caller in (whatever the app or RBAC said then), `refused`
 * with the error when the TLS handshake or the first read failed. The server's certificate is not
 * checked: this is about whom Envoy admits.
 */
export async function mtlsRequest(
  port: number,
  client: { certPem: string; keyPem: string; servername?: string },
): Promise<{ answered: string } | { refused: string }> {
  const socket = tlsConnect({
    host: '127.0.0.1',
    port,
    cert: client.certPem,
    key: client.keyPem,
    rejectUnauthorized: false,
    ...(client.servername ? { servername: client.servername } : {}),
  });
  let received = '';
  const done = new Promise<{ answered: string } | { refused: string }>((resolve) => {
    socket.setEncoding('utf8');
    socket.on('secureConnect', () =>
      socket.write('GET /mtls HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n'),
    );
    socket.on('data', (chunk: string) => {
      received += chunk;
      if (received.includes('\r\n'))
        resolve({ answered: received.slice(0, received.indexOf('\r\n')) });
    });
    socket.on('error', (err: NodeJS.ErrnoException) =>
      resolve({ refused: err.code ?? err.message }),
    );
    socket.on('close', () => resolve({ refused: `closed after ${JSON.stringify(received)}` }));
  });
  try {
    return await withDeadline(done, {
      timeoutMs: 10_000,
      what: `an mTLS request to 127.0.0.1:${port}`,
    });
  } finally {
    socket.destroy();
  }
}
