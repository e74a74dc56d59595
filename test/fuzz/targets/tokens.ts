/**
 * Fuzz target: token parsing (issue 21 §4). Each input is text, tried as every kind of token a
 * caller presents: the peering token (as given, and base64-encoded so JSON mutations reach the
 * field checks), the HTTP API token in `X-Isthmus-Token` and `Authorization: Bearer`, the scope of
 * an API token, and the proxy token in xDS stream metadata, checked by real ProxyTokens and
 * ApiTokens on an LMDB store. A finding is an exception from a parser (they return results), an
 * error other than a refusal from a token check, or a broken round trip: a token that parses must
 * encode and parse back to itself, a scope must format and parse back to itself.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { formatApiScope, parseApiScope } from '../../../src/acl/api-scope.js';
import { type ApiTokens, openApiTokens } from '../../../src/acl/api-tokens.js';
import { presentedToken, tokensEqual } from '../../../src/acl/http-token.js';
import { openProxyTokens, type ProxyTokens } from '../../../src/acl/proxy-tokens.js';
import { silentLogger } from '../../../src/log.js';
import { xdsTokenHeader } from '../../../src/mesh/bootstrap.js';
import { dialAddressesOf, encodeToken, parseToken } from '../../../src/peering/token.js';
import { openLmdbStore } from '../../../src/store/index.js';
import { check, expectRefusal } from './verdict.js';

interface Tokens {
  readonly proxy: ProxyTokens;
  readonly api: ApiTokens;
  /** A real proxy token's secret, so inputs near it are tried too. */
  readonly proxySecret: string;
}

let tokens: Promise<Tokens> | undefined;

async function open(): Promise<Tokens> {
  const dir = mkdtempSync(join(tmpdir(), 'isthmus-fuzz-tokens-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  const store = await openLmdbStore(dir);
  const proxy = await openProxyTokens(store, { logger: silentLogger() });
  const api = await openApiTokens(store, { logger: silentLogger() });
  const created = await proxy.create('web-sidecar-proxy');
  await api.create({ scope: 'service:web', description: 'fuzz' });
  return { proxy, api, proxySecret: created.secretId };
}

function peeringToken(text: string): void {
  const parsed = parseToken(text);
  if (!parsed.ok) {
    check(typeof parsed.error === 'string' && parsed.error !== '', 'a refusal without a reason');
    return;
  }
  check(dialAddressesOf(parsed.value).length > 0, 'a parsed token with no address to dial');
  const again = parseToken(encodeToken(parsed.value));
  check(again.ok, `a parsed token does not parse once encoded: ${again.ok || again.error}`);
  check(isDeepStrictEqual(again.value, parsed.value), 'a token changes over encode and parse');
}

function apiScope(text: string): void {
  const scope = parseApiScope(text);
  if (!scope.ok) return;
  const again = parseApiScope(formatApiScope(scope.value));
  check(again.ok && isDeepStrictEqual(again.value, scope.value), `scope ${text} round trip`);
}

function xdsToken(t: Tokens, text: string): void {
  const metadata = new grpc.Metadata();
  try {
    metadata.set(xdsTokenHeader, text);
  } catch {
    return; // grpc-js refuses the value before the server sees it
  }
  for (const step of [
    () => t.proxy.authenticateXds(metadata),
    () => t.proxy.authorizeXds('web-sidecar-proxy', metadata),
    () => t.proxy.authorizeXds(text, metadata),
  ]) {
    try {
      step();
    } catch (err) {
      expectRefusal(err, 'xDS token check');
    }
  }
}

export async function fuzz(data: Buffer): Promise<void> {
  tokens ??= open();
  const t = await tokens;
  const text = data.toString('utf8');
  peeringToken(text);
  peeringToken(Buffer.from(text, 'utf8').toString('base64'));
  apiScope(text);
  for (const headers of [{ 'x-isthmus-token': text }, { authorization: text }]) {
    const presented = presentedToken({ headers });
    if (presented === undefined) continue;
    check(presented !== '', 'an empty token presented');
    tokensEqual(presented, t.proxySecret);
    t.api.scopeOf(presented);
  }
  xdsToken(t, text);
  xdsToken(t, `${t.proxySecret}${text}`);
}
