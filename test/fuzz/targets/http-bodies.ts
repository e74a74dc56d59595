/**
 * Fuzz target: the HTTP API's request bodies (issue 21 §4). A real in-process `isthmus server`
 * (LMDB data directory, HTTP on 127.0.0.1 port 0) is started once; each input is one request: the
 * first line is `METHOD /path`, the rest is the body, sent as JSON. Only routes the server declares
 * are called (any path parameter may be fuzzed). A finding is a 5xx other than 503 and 507 (those
 * name a state of the server, not a bug), an error answer that is not JSON with an `error`, or an
 * error body longer than a bound (issue 21 §3: echoed input is cut short).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadServerConfig } from '../../../src/config/index.js';
import { silentLogger } from '../../../src/log.js';
import { type RunningServer, startServer } from '../../../src/server.js';
import { check, Finding } from './verdict.js';

/** Longest error body: a message, field paths and an echo of a few hundred characters. */
const maxErrorBodyChars = 8 * 1024;

let server: Promise<{ base: string; routes: RegExp[] }> | undefined;

function start(): Promise<{ base: string; routes: RegExp[] }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'isthmus-fuzz-http-'));
  process.on('exit', () => rmSync(dataDir, { recursive: true, force: true }));
  const flags = {
    dataDir,
    httpAddr: '127.0.0.1:0',
    xdsAddr: '127.0.0.1:0',
    peeringAddr: '127.0.0.1:0',
  };
  return startServer(loadServerConfig({ flags, env: {} }), { logger: silentLogger() }).then(
    (s: RunningServer) => ({
      base: `http://127.0.0.1:${s.httpPort}`,
      routes: s.httpRoutes
        .filter((r) => r.method !== 'HEAD')
        .map((r) => new RegExp(`^${r.method} ${r.url.replace(/:[A-Za-z]+/g, '[^/?#]+')}(\\?.*)?$`)),
    }),
  );
}

export async function fuzz(data: Buffer): Promise<void> {
  server ??= start();
  const { base, routes } = await server;
  const text = data.toString('utf8');
  const newline = text.indexOf('\n');
  const head = newline < 0 ? text : text.slice(0, newline);
  const body = newline < 0 ? '' : text.slice(newline + 1);
  if (!routes.some((r) => r.test(head))) return;
  const [method = 'GET', path = '/'] = head.split(' ');
  if (!path.startsWith('/') || path.startsWith('//')) return;
  const withBody = method !== 'GET' && method !== 'DELETE' && body !== '';
  let res: Response;
  try {
    res = await fetch(base + path, {
      method,
      headers: withBody ? { 'content-type': 'application/json' } : {},
      ...(withBody ? { body } : {}),
    });
  } catch (err) {
    // A path fetch itself refuses (bad URL characters) never reaches the server.
    if (err instanceof TypeError && !String(err.cause ?? '').includes('ECONNRE')) return;
    throw new Finding(`${head}: the request failed: ${String(err)}`);
  }
  const answer = await res.text();
  if (res.status >= 500 && res.status !== 503 && res.status !== 507)
    throw new Finding(`${head}: HTTP ${res.status}: ${answer.slice(0, 2000)}`);
  if (res.status < 400) return;
  check(
    answer.length <= maxErrorBodyChars,
    `${head}: HTTP ${res.status} error body of ${answer.length} characters`,
  );
  let json: unknown;
  try {
    json = JSON.parse(answer);
  } catch {
    throw new Finding(
      `${head}: HTTP ${res.status} error body is not JSON: ${answer.slice(0, 500)}`,
    );
  }
  check(
    typeof json === 'object' && json !== null && 'error' in json,
    `${head}: HTTP ${res.status} error body has no "error": ${answer.slice(0, 500)}`,
  );
}
