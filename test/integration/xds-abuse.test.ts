/**
 * Issue 18, abuse limits on the xDS port, one test per limit: request size, streams without a
 * token, silent streams, streams per proxy token, and requests Envoy could never send.
 */
import * as grpc from '@grpc/grpc-js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { openProxyTokens, type ProxyTokens, xdsAuth } from '../../src/acl/index.js';
import { silentLogger } from '../../src/log.js';
import { openLmdbStore } from '../../src/store/index.js';
import type { XdsServerOptions } from '../../src/xds/server.js';
import type { XdsClientTls } from '../../src/xds/tls.js';
import { TypeUrl } from '../../src/xds/types.js';
import { adsClient, connectDelta } from '../helpers/fake-envoy.js';
import { cleanupProcesses, startServerProcess } from '../helpers/process.js';
import {
  deeplyNestedRequest,
  openRawStream,
  rawAdsClient,
  type RawStream,
  tokenMetadata,
} from '../helpers/raw-ads.js';
import { secret } from '../helpers/resources.js';
import { waitFor, withDeadline } from '../helpers/wait.js';
import { metricValue, startXds, type XdsHarness } from '../helpers/xds-harness.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
  await cleanupProcesses();
});
afterAll(cleanupProcesses);

const ended = (s: RawStream, what: string) => withDeadline(s.ended, { timeoutMs: 20_000, what });

async function harness(
  opts: Partial<Omit<XdsServerOptions, 'cache' | 'logger' | 'metrics'>> = {},
): Promise<XdsHarness> {
  const h = await startXds(opts);
  cleanups.push(() => h.close());
  return h;
}

/** An xDS server with `--xds-auth token` over a fresh token index. */
async function tokenHarness(
  opts: Partial<Omit<XdsServerOptions, 'cache' | 'logger' | 'metrics'>> = {},
): Promise<{ h: XdsHarness; tokens: ProxyTokens }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'isthmus-xds-abuse-'));
  const store = await openLmdbStore(dir);
  const tokens = await openProxyTokens(store, { logger: silentLogger() });
  cleanups.push(
    () => fs.rmSync(dir, { recursive: true, force: true }),
    () => store.close(),
    () => tokens.close(),
  );
  const h = await harness({ ...xdsAuth('token', tokens, silentLogger()), ...opts });
  return { h, tokens };
}

function rawClient(address: string, tls?: XdsClientTls): grpc.Client {
  const client = rawAdsClient(address, tls);
  cleanups.push(() => client.close());
  return client;
}

/** A proxy that subscribes to its secret and receives it: the server still serves real proxies. */
async function expectServed(h: XdsHarness, nodeId: string, metadata = new grpc.Metadata()) {
  h.cache.setProxyResources(nodeId, [secret(`leaf:${nodeId}`)]);
  const envoy = connectDelta(h.client, nodeId, metadata);
  cleanups.push(() => envoy.close());
  envoy.send(TypeUrl.secret, { subscribe: [`leaf:${nodeId}`] });
  const response = await envoy.next(10_000);
  expect(response.resources.map((r) => r.name)).toEqual([`leaf:${nodeId}`]);
  return envoy;
}

function rssBytes(pid: number): number {
  const line = fs
    .readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('VmRSS:'));
  return Number(/(\d+)/.exec(line ?? '')?.[1] ?? NaN) * 1024;
}

describe('xDS abuse limits', () => {
  it('oversize messages are refused before they are buffered; the server RSS stays bounded', async () => {
    const server = await startServerProcess();
    const pid = server.child.pid!;
    const created = await fetch(server.url('/v1/acl/token'), {
      method: 'POST',
      body: JSON.stringify({ ProxyID: 'web' }),
    });
    const { SecretID } = (await created.json()) as { SecretID: string };
    const tls = await server.xdsTls();
    const client = rawClient(`127.0.0.1:${server.xdsPort}`, tls);
    const before = rssBytes(pid);
    const huge = Buffer.alloc(60 * 1024 * 1024, 0x0a);
    // Without a token: refused when the stream opens, the body is never read.
    const anonymous = Array.from({ length: 8 }, () => openRawStream(client));
    for (const s of anonymous) s.write(huge);
    for (const s of anonymous)
      expect((await ended(s, 'an unauthenticated stream to end')).code).toBe(
        grpc.status.UNAUTHENTICATED,
      );
    // With a valid token: refused from the length prefix, over --xds-max-request-bytes.
    const authenticated = Array.from({ length: 6 }, () =>
      openRawStream(client, tokenMetadata(SecretID)),
    );
    for (const s of authenticated) s.write(huge);
    for (const s of authenticated) {
      const status = await ended(s, 'an oversize stream to end');
      expect(status.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expect(status.details).toMatch(/larger than max \(62914560 vs 4194304\)/);
    }
    const after = rssBytes(pid);
    // Before issue 18, 24 such messages took the server from 135 MB to 1.8 GB. A generous bound.
    expect(after - before).toBeLessThan(200 * 1024 * 1024);
    expect((await fetch(server.url('/healthz'))).status).toBe(200);
    // The real proxy still gets its stream.
    const xds = adsClient(`127.0.0.1:${server.xdsPort}`, tls);
    cleanups.push(() => xds.close());
    const envoy = connectDelta(xds, 'web', tokenMetadata(SecretID));
    cleanups.push(() => envoy.close());
    envoy.send(TypeUrl.cluster, { subscribe: ['*'] });
    await waitFor(
      async () => {
        const res = await fetch(server.url('/v1/xds/proxies'));
        return ((await res.json()) as { ID: string }[]).some((p) => p.ID === 'web');
      },
      { timeoutMs: 10_000, what: 'web in /v1/xds/proxies' },
    );
  }, 120_000);

  it('idle streams without a token take no slot of --xds-max-streams', async () => {
    // Token auth: refused at once, whatever the limit.
    const { h, tokens } = await tokenHarness({ maxStreams: 2 });
    const client = rawClient(h.address);
    const refused = Array.from({ length: 10 }, () => openRawStream(client));
    for (const s of refused)
      expect((await ended(s, 'a tokenless stream to end')).code).toBe(grpc.status.UNAUTHENTICATED);
    expect(
      await metricValue(h.metrics, 'isthmus_xds_streams_refused_total', {
        reason: 'unauthenticated',
      }),
    ).toBe(10);
    const web = await tokens.create('web');
    await expectServed(h, 'web', tokenMetadata(web.secretId));

    // Auth off: idle streams stay open until the admission timeout, but hold no slot.
    const open = await harness({ maxStreams: 2 });
    const openClient = rawClient(open.address);
    const idle = Array.from({ length: 10 }, () => openRawStream(openClient));
    cleanups.push(() => idle.forEach((s) => s.close()));
    await waitFor(() => open.server.openCount === 10, {
      timeoutMs: 10_000,
      what: 'the server to see 10 idle streams',
    });
    await expectServed(open, 'a');
    await expectServed(open, 'b');
    expect(await metricValue(open.metrics, 'isthmus_xds_streams', { api: 'delta' })).toBe(2);
    // The limit still holds for admitted streams.
    const third = connectDelta(open.client, 'c');
    cleanups.push(() => third.close());
    third.send(TypeUrl.secret, { subscribe: ['x'] });
    const status = await withDeadline(third.ended, { timeoutMs: 10_000, what: 'refusal' });
    expect(status.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(status.details).toContain('--xds-max-streams');
  });

  it('a stream with no first request is closed after --xds-admission-timeout-ms', async () => {
    const h = await harness({ admissionTimeoutMs: 300 });
    const silent = openRawStream(rawClient(h.address));
    const admitted = await expectServed(h, 'web');
    const status = await ended(silent, 'the silent stream to be closed');
    expect(status.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(status.details).toContain('--xds-admission-timeout-ms');
    expect(
      await metricValue(h.metrics, 'isthmus_xds_streams_refused_total', { reason: 'timeout' }),
    ).toBe(1);
    expect(h.server.openCount).toBe(1);
    // The admitted stream outlives the bound.
    expect(await admitted.quietFor(400)).toBe(true);
    expect(h.server.proxyStatus().map((p) => p.ID)).toEqual(['web']);
  });

  it('one proxy token holds at most --xds-max-streams-per-token streams', async () => {
    const { h, tokens } = await tokenHarness({ maxStreamsPerToken: 2 });
    const web = await tokens.create('web');
    const api = await tokens.create('api');
    const first = await expectServed(h, 'web', tokenMetadata(web.secretId));
    await expectServed(h, 'web', tokenMetadata(web.secretId));
    const client = rawClient(h.address);
    const third = openRawStream(client, tokenMetadata(web.secretId));
    const status = await ended(third, 'the third stream of one token to end');
    expect(status.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(status.details).toContain('--xds-max-streams-per-token 2');
    // Other tokens are not affected, and a closed stream frees its place.
    await expectServed(h, 'api', tokenMetadata(api.secretId));
    first.close();
    await waitFor(() => h.server.openCount === 2, { timeoutMs: 10_000, what: 'first to close' });
    await expectServed(h, 'web', tokenMetadata(web.secretId));
  });

  it.each(['delta', 'sotw'] as const)(
    'a %s request Envoy could never send (node metadata nested 33 deep) is INVALID_ARGUMENT',
    async (api) => {
      const h = await harness();
      const stream = openRawStream(rawClient(h.address), undefined, api);
      stream.write(deeplyNestedRequest('web', 33, api));
      const status = await ended(stream, 'the malformed stream to end');
      expect(status.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(status.details).toMatch(/^malformed .* request: .*recursion limit/);
      expect(
        await metricValue(h.metrics, 'isthmus_xds_streams_refused_total', { reason: 'invalid' }),
      ).toBe(1);
      // Ordinary nesting is fine.
      const fine = openRawStream(rawClient(h.address), undefined, api);
      cleanups.push(() => fine.close());
      fine.write(deeplyNestedRequest('web', 8, api));
      await waitFor(() => h.server.connectedCount === 1, {
        timeoutMs: 10_000,
        what: 'the 8-deep stream to be admitted',
      });
    },
  );
});
