/**
 * The two applications of the demo with Envoy, plain HTTP/1.1 on 127.0.0.1 (each sidecar does the
 * mTLS): `api` in A answers every request with what reached it, the headers its sidecar added
 * among them (`x-forwarded-client-cert` names the caller); `web` in B calls api through its
 * sidecar's upstream listener, as an app in a mesh does, and answers with what api answered.
 */
import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface DemoApp {
  readonly name: string;
  readonly port: number;
  close(): Promise<void>;
}

/** What api answers: itself, and the request as it reached it. */
export interface ApiAnswer {
  readonly app: string;
  readonly datacenter: string;
  readonly method: string;
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
}

/** What web answers: where it called api and what came back. */
export interface WebAnswer {
  readonly app: 'web';
  readonly called: string;
  readonly status: number;
  readonly body: string;
}

export function startApiApp(datacenter: string): Promise<DemoApp> {
  return serve('api', (req, res) => {
    const answer: ApiAnswer = {
      app: 'api',
      datacenter,
      method: req.method ?? '',
      path: req.url ?? '',
      headers: flatHeaders(req.headers),
    };
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(answer));
    });
  });
}

/** GET /<path> on web calls `http://127.0.0.1:<upstreamPort>/<path>`. */
export function startWebApp(upstreamPort: number): Promise<DemoApp> {
  return serve('web', (req, res) => {
    req.resume();
    const called = `http://127.0.0.1:${upstreamPort}${req.url ?? '/'}`;
    httpGet(called).then(
      ({ status, body }) => {
        const answer: WebAnswer = { app: 'web', called, status, body };
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(answer));
      },
      (err: Error) => {
        res.writeHead(502, { 'content-type': 'text/plain' });
        res.end(`web could not call ${called}: ${err.message}`);
      },
    );
  });
}

/** One GET on a fresh connection, 10 s at most. */
export function httpGet(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within 10 s from ${url}`)));
    req.on('error', reject);
    req.end();
  });
}

function flatHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers).sort(([x], [y]) => x.localeCompare(y)))
    if (v !== undefined) out[k] = Array.isArray(v) ? v.join(', ') : v;
  return out;
}

async function serve(
  name: string,
  handler: Parameters<typeof createServer>[1] & {},
): Promise<DemoApp> {
  const server: Server = createServer(handler);
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) =>
    server.once('error', reject).listen(0, '127.0.0.1', resolve),
  );
  return {
    name,
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
