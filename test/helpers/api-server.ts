import { loadServerConfig } from '../../src/config/index.js';
import { silentLogger } from '../../src/log.js';
import { type RunningServer, startServer } from '../../src/server.js';
import { tempDir } from './process.js';

/** An in-process `isthmus server` on 127.0.0.1 port 0, and a small HTTP client for its API. */
export interface ApiServer {
  readonly server: RunningServer;
  readonly dataDir: string;
  readonly base: string;
  call(
    method: string,
    path: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<ApiResponse>;
  stop(): Promise<void>;
}

export interface ApiResponse {
  readonly status: number;
  readonly text: string;
  readonly json: any;
}

export async function startApiServer(
  opts: { dataDir?: string; flags?: Record<string, unknown> } = {},
): Promise<ApiServer> {
  const dataDir = opts.dataDir ?? tempDir('isthmus-data-');
  const flags = {
    dataDir,
    httpAddr: '127.0.0.1:0',
    xdsAddr: '127.0.0.1:0',
    peeringAddr: '127.0.0.1:0',
    ...opts.flags,
  };
  const server = await startServer(loadServerConfig({ flags, env: {} }), {
    logger: silentLogger(),
  });
  const base = `http://127.0.0.1:${server.httpPort}`;
  return {
    server,
    dataDir,
    base,
    call: (method, path, body, headers) => call(base, method, path, body, headers),
    stop: () => server.stop(),
  };
}

async function call(
  base: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<ApiResponse> {
  const init: RequestInit = { method, headers: { ...headers } };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    (init.headers as Record<string, string>)['content-type'] ??= 'application/json';
  }
  const res = await fetch(base + path, init);
  const text = await res.text();
  let json: unknown;
  try {
    json = text === '' ? undefined : JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, text, json };
}
