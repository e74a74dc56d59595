/**
 * Application processes for real-Envoy tests: small servers on 127.0.0.1 that say who they are and
 * what they saw (path, method, headers — among them the `x-forwarded-client-cert` a sidecar adds),
 * and clients for each protocol a mesh carries: TCP, HTTP/1.1, HTTP/2 (h2c), gRPC unary and
 * streaming, and WebSocket. They stand for the user's apps; every proxy between them is Envoy.
 */
import { once } from 'node:events';
import {
  createServer as createHttpServer,
  request as httpRequest,
  type IncomingHttpHeaders,
} from 'node:http';
import {
  connect as http2Connect,
  createServer as createHttp2Server,
  constants as h2,
} from 'node:http2';
import {
  type AddressInfo,
  type Server as NetServer,
  type Socket,
  connect as netConnect,
  createServer as createNetServer,
} from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { WebSocket, WebSocketServer } from 'ws';
import { freePort } from '../../src/demo/free-port.js';
import { withDeadline } from '../helpers/wait.js';

export type AppProtocol = 'tcp' | 'http' | 'http2' | 'grpc';

/** What an HTTP-family app answers: its name and what reached it. */
export interface Seen {
  readonly app: string;
  readonly method: string;
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
}

export interface App {
  readonly name: string;
  readonly protocol: AppProtocol;
  readonly port: number;
  /** Requests (or TCP connections, or gRPC calls, or WebSocket upgrades) that reached the app. */
  readonly seen: Seen[];
  close(): Promise<void>;
}

const running = new Set<App>();

/** Closes every app still open. For afterAll. */
export async function closeApps(): Promise<void> {
  await Promise.all([...running].map((a) => a.close()));
}

function flatHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers))
    if (v !== undefined && !k.startsWith(':')) out[k] = Array.isArray(v) ? v.join(', ') : v;
  return out;
}

function track(app: App): App {
  running.add(app);
  return app;
}

async function listen(server: NetServer, port = 0): Promise<number> {
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

function closer(server: NetServer, sockets: Set<Socket>, app: () => App): () => Promise<void> {
  return async () => {
    running.delete(app());
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
}

/**
 * A TCP app: writes `<name>\n` on connect, then echoes what it receives; `seen` records each chunk
 * received (`DATA`). A sidecar's tcp_proxy connects to the app before its RBAC filter has checked
 * the caller (on the first byte), so a denied caller may open a connection to the app, but never
 * gets a byte to it or from it.
 */
export async function startTcpApp(name: string, port = 0): Promise<App> {
  const seen: Seen[] = [];
  const sockets = new Set<Socket>();
  const server = createNetServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    socket.write(`${name}\n`);
    socket.on('data', (chunk: Buffer) => {
      seen.push({ app: name, method: 'DATA', path: chunk.toString(), headers: {} });
      socket.write(chunk);
    });
  });
  const bound = await listen(server, port);
  const app: App = {
    name,
    protocol: 'tcp',
    port: bound,
    seen,
    close: closer(server, sockets, () => app),
  };
  return track(app);
}

/**
 * An HTTP/1.1 app answering every request with its `Seen` as JSON (status from `?status=`, or
 * always `opts.status`: an instance that keeps failing), that also takes WebSocket upgrades on any
 * path and echoes messages prefixed with its name.
 */
export async function startHttpApp(
  name: string,
  port = 0,
  opts: { readonly status?: number } = {},
): Promise<App> {
  const seen: Seen[] = [];
  const sockets = new Set<Socket>();
  const server = createHttpServer((req, res) => {
    const entry: Seen = {
      app: name,
      method: req.method ?? '',
      path: req.url ?? '',
      headers: flatHeaders(req.headers),
    };
    seen.push(entry);
    req.resume();
    req.on('end', () => {
      const status =
        opts.status ??
        Number(new URL(req.url ?? '/', 'http://x').searchParams.get('status') ?? 200);
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(entry));
    });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  const wss = new WebSocketServer({ noServer: true });
  server.on('upgrade', (req, socket, head) => {
    seen.push({
      app: name,
      method: 'UPGRADE',
      path: req.url ?? '',
      headers: flatHeaders(req.headers),
    });
    wss.handleUpgrade(req, socket, head, (ws) =>
      ws.on('message', (data) => ws.send(`${name}:${String(data)}`)),
    );
  });
  const bound = await listen(server, port);
  const app: App = {
    name,
    protocol: 'http',
    port: bound,
    seen,
    close: async () => {
      for (const c of wss.clients) c.terminate();
      await closer(server, sockets, () => app)();
    },
  };
  return track(app);
}

/** An HTTP/2 cleartext (prior knowledge) app answering with its `Seen` as JSON. */
export async function startHttp2App(name: string, port = 0): Promise<App> {
  const seen: Seen[] = [];
  const sockets = new Set<Socket>();
  const server = createHttp2Server();
  server.on('stream', (stream, headers) => {
    const entry: Seen = {
      app: name,
      method: String(headers[h2.HTTP2_HEADER_METHOD]),
      path: String(headers[h2.HTTP2_HEADER_PATH]),
      headers: flatHeaders(headers),
    };
    seen.push(entry);
    stream.on('error', () => undefined);
    stream.respond({ ':status': 200, 'content-type': 'application/json' });
    stream.end(JSON.stringify(entry));
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  const bound = await listen(server as unknown as NetServer, port);
  const app: App = {
    name,
    protocol: 'http2',
    port: bound,
    seen,
    close: closer(server as unknown as NetServer, sockets, () => app),
  };
  return track(app);
}

const identity = (b: Buffer): Buffer => b;
const echoDefinition = {
  who: {
    path: '/test.Echo/Who',
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
  count: {
    path: '/test.Echo/Count',
    requestStream: true,
    responseStream: true,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
} satisfies grpc.ServiceDefinition;

/**
 * A gRPC app: unary `Who` answers `<name> <x-forwarded-client-cert>`; bidirectional `Count`
 * answers each message `m` with `<name>:m`.
 */
export async function startGrpcApp(name: string, port = 0): Promise<App> {
  const seen: Seen[] = [];
  const server = new grpc.Server();
  const headersOf = (md: grpc.Metadata): Record<string, string> =>
    Object.fromEntries(Object.entries(md.getMap()).map(([k, v]) => [k, String(v)]));
  server.addService(echoDefinition, {
    who: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      const entry = {
        app: name,
        method: 'POST',
        path: '/test.Echo/Who',
        headers: headersOf(call.metadata),
      };
      seen.push(entry);
      callback(null, Buffer.from(JSON.stringify(entry)));
    },
    count: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      seen.push({
        app: name,
        method: 'POST',
        path: '/test.Echo/Count',
        headers: headersOf(call.metadata),
      });
      call.on('data', (m: Buffer) => call.write(Buffer.from(`${name}:${m.toString()}`)));
      call.on('end', () => call.end());
      call.on('error', () => undefined);
    },
  });
  const bound = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  const app: App = {
    name,
    protocol: 'grpc',
    port: bound,
    seen,
    close: async () => {
      running.delete(app);
      server.forceShutdown();
    },
  };
  return track(app);
}

/** Starts the app of `protocol` (HTTP/1.1 apps also take WebSockets). */
export function startApp(protocol: AppProtocol, name: string, port = 0): Promise<App> {
  switch (protocol) {
    case 'tcp':
      return startTcpApp(name, port);
    case 'http':
      return startHttpApp(name, port);
    case 'http2':
      return startHttp2App(name, port);
    case 'grpc':
      return startGrpcApp(name, port);
  }
}

// ---- clients ------------------------------------------------------------------------------------

const clientDeadlineMs = 20_000;

/** Connects over TCP, reads the app's greeting line, sends `ping` and reads the echo. */
export async function tcpCall(port: number): Promise<{ greeting: string; echo: string }> {
  const socket = netConnect(port, '127.0.0.1');
  socket.setEncoding('utf8');
  let received = '';
  const done = new Promise<{ greeting: string; echo: string }>((resolve, reject) => {
    socket.on('data', (chunk: string) => {
      received += chunk;
      const nl = received.indexOf('\n');
      if (nl >= 0 && received.length >= nl + 1 + 'ping'.length) {
        resolve({ greeting: received.slice(0, nl), echo: received.slice(nl + 1) });
        socket.destroy();
      }
    });
    socket.on('connect', () => socket.write('ping'));
    socket.on('error', reject);
    socket.on('close', () =>
      reject(
        new Error(`TCP connection to 127.0.0.1:${port} closed after ${JSON.stringify(received)}`),
      ),
    );
  });
  try {
    return await withDeadline(done, {
      timeoutMs: clientDeadlineMs,
      what: `a TCP exchange through 127.0.0.1:${port}`,
    });
  } finally {
    socket.destroy();
  }
}

export interface HttpResult {
  readonly status: number;
  readonly body: string;
  readonly headers: IncomingHttpHeaders;
  /** The app's `Seen`, when the app answered (undefined for a proxy's own reply). */
  readonly seen?: Seen | undefined;
}

function parseSeen(body: string): Seen | undefined {
  try {
    const v = JSON.parse(body) as Seen;
    return typeof v === 'object' && v !== null && 'app' in v ? v : undefined;
  } catch {
    return undefined;
  }
}

/** One HTTP/1.1 request on a fresh connection. */
export async function httpCall(
  port: number,
  path = '/',
  opts: { method?: string; headers?: Record<string, string> } = {},
): Promise<HttpResult> {
  const done = new Promise<HttpResult>((resolve, reject) => {
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port,
        path,
        method: opts.method ?? 'GET',
        headers: opts.headers ?? {},
        agent: false,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body,
            headers: res.headers,
            seen: parseSeen(body),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
  return withDeadline(done, {
    timeoutMs: clientDeadlineMs,
    what: `HTTP/1.1 ${path} through 127.0.0.1:${port}`,
  });
}

/** One HTTP/2 (h2c prior knowledge) request. */
export async function http2Call(
  port: number,
  path = '/',
  headers: Record<string, string> = {},
): Promise<HttpResult> {
  const session = http2Connect(`http://127.0.0.1:${port}`);
  const done = new Promise<HttpResult>((resolve, reject) => {
    session.on('error', reject);
    const req = session.request({ ':path': path, ':method': 'GET', ...headers });
    let body = '';
    let status = 0;
    let resHeaders: IncomingHttpHeaders = {};
    req.setEncoding('utf8');
    req.on('response', (h) => {
      status = Number(h[':status']);
      resHeaders = h as IncomingHttpHeaders;
    });
    req.on('data', (c: string) => (body += c));
    req.on('end', () => resolve({ status, body, headers: resHeaders, seen: parseSeen(body) }));
    req.on('error', reject);
    req.end();
  });
  try {
    return await withDeadline(done, {
      timeoutMs: clientDeadlineMs,
      what: `HTTP/2 ${path} through 127.0.0.1:${port}`,
    });
  } finally {
    session.destroy();
  }
}

const EchoClient = grpc.makeGenericClientConstructor(
  echoDefinition,
  'test.Echo',
) as unknown as new (
  address: string,
  credentials: grpc.ChannelCredentials,
) => grpc.Client & {
  who(
    req: Buffer,
    md: grpc.Metadata,
    opts: Partial<grpc.CallOptions>,
    cb: (err: grpc.ServiceError | null, res?: Buffer) => void,
  ): void;
  count(
    md: grpc.Metadata,
    opts: Partial<grpc.CallOptions>,
  ): grpc.ClientDuplexStream<Buffer, Buffer>;
};

/** A unary gRPC call; resolves with the app's `Seen` or rejects with the gRPC error. */
export async function grpcUnary(port: number): Promise<Seen> {
  const client = new EchoClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  try {
    const res = await new Promise<Buffer>((resolve, reject) =>
      client.who(
        Buffer.from('who'),
        new grpc.Metadata(),
        { deadline: Date.now() + clientDeadlineMs },
        (err, r) => (err ? reject(err) : resolve(r!)),
      ),
    );
    return JSON.parse(res.toString()) as Seen;
  } finally {
    client.close();
  }
}

/** A bidirectional stream: sends each message and collects the answers in order. */
export async function grpcStream(port: number, messages: readonly string[]): Promise<string[]> {
  const client = new EchoClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  try {
    const call = client.count(new grpc.Metadata(), { deadline: Date.now() + clientDeadlineMs });
    const answers: string[] = [];
    const done = new Promise<string[]>((resolve, reject) => {
      call.on('data', (m: Buffer) => {
        answers.push(m.toString());
        const next = messages[answers.length];
        if (next !== undefined) call.write(Buffer.from(next));
        else call.end();
      });
      call.on('end', () => resolve(answers));
      call.on('error', reject);
    });
    // One message at a time: each answer must come back before the next is sent.
    call.write(Buffer.from(messages[0]!));
    return await done;
  } finally {
    client.close();
  }
}

/**
 * Opens a WebSocket, sends each message and collects the echoes; resolves with them and the upgrade
 * status.
 */
export async function webSocketCall(
  port: number,
  messages: readonly string[],
  path = '/ws',
): Promise<string[]> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`);
  const answers: string[] = [];
  const done = new Promise<string[]>((resolve, reject) => {
    ws.on('open', () => ws.send(messages[0]!));
    ws.on('message', (data) => {
      answers.push(String(data));
      const next = messages[answers.length];
      if (next !== undefined) ws.send(next);
      else resolve(answers);
    });
    ws.on('unexpected-response', (_req, res) =>
      reject(new Error(`WebSocket upgrade refused: HTTP ${res.statusCode}`)),
    );
    ws.on('error', reject);
  });
  try {
    return await withDeadline(done, {
      timeoutMs: clientDeadlineMs,
      what: `a WebSocket exchange through 127.0.0.1:${port}`,
    });
  } finally {
    ws.terminate();
  }
}

/**
 * Ports handed out in this test process: two Envoys of one file must never be given the same one.
 */
const handedOut = new Set<number>();

/**
 * A port from 20000–31999 that is free on 127.0.0.1 now (below Linux's ephemeral range, so an
 * outgoing connection will not take it before Envoy binds it), the demo's own picker: claimed for
 * this process, so a test file running in parallel (or another suite) is never handed it too.
 */
export function listenPort(): Promise<number> {
  return freePort(handedOut);
}
