/**
 * The web UI (issue 17) in a real browser: Debian's Chromium driven by playwright-core against two
 * peered `isthmus server` processes. A (`dc-a`, with --http-token) exports `api` to B and has a
 * `cache` sidecar whose Envoy NACKs its clusters; B (`dc-b`) runs `web`, whose sidecar calls
 * `api` across the peering. The tests read the pages as a user does, check them with axe-core, and
 * keep a screenshot of the page under test-artifacts/ui/ when one fails. With
 * UPDATE_SCREENSHOTS=1 they write the README's screenshots, docs/ui/*.png.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { AxeBuilder } from '@axe-core/playwright';
import * as grpc from '@grpc/grpc-js';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { TypeUrl } from '../../src/xds/types.js';
import { adsClient, connectDelta, type DeltaEnvoy } from '../helpers/fake-envoy.js';
import { type MeshProcess, startMeshProcess } from '../helpers/mesh-server.js';
import { type PeeredMeshes, startPeeredMeshes } from '../helpers/peered-mesh.js';
import { waitFor } from '../helpers/wait.js';

const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const httpToken = 'ui-test-operator-token-0123456789';
const nackMessage = 'cluster local_app: invalid connect_timeout (test NACK)';
const root = resolve(import.meta.dirname, '..', '..');
const artifacts = join(root, 'test-artifacts', 'ui');
const screenshots = process.env.UPDATE_SCREENSHOTS === '1' ? join(root, 'docs', 'ui') : undefined;
/** What the user waits for on a loaded machine: generous, never a timing assertion. */
const UI_WAIT = 15_000;

let meshes: PeeredMeshes<MeshProcess>;
let browser: Browser;
let nacker: DeltaEnvoy;
let xds: ReturnType<typeof adsClient>;
/** The page of the running test, for the screenshot if it fails. */
let current: Page | undefined;
const contexts: BrowserContext[] = [];

function withSidecar(name: string, port: number, upstreams: unknown[] = []) {
  return {
    ID: name,
    Name: name,
    Address: '127.0.0.1',
    Port: port,
    Check: { TTL: '600s', Status: 'passing' },
    Connect: { SidecarService: { Proxy: { Upstreams: upstreams } } },
  };
}

beforeAll(async () => {
  if (!existsSync(chromiumPath))
    throw new Error(`no Chromium at ${chromiumPath}: apt-get install chromium (.ci/run does)`);
  meshes = await startPeeredMeshes({ httpToken }, {}, startMeshProcess);
  const { a, b } = meshes;
  await a.register(withSidecar('api', 8080));
  await a.register(withSidecar('cache', 6379));
  await a.putConfig({
    Kind: 'exported-services',
    Name: 'default',
    Services: [{ Name: 'api', Consumers: [{ Peer: 'cluster-b' }] }],
  });
  await b.register(
    withSidecar('web', 8081, [
      { DestinationName: 'api', DestinationPeer: 'cluster-a', LocalBindPort: 9191 },
    ]),
  );
  // `cache`'s Envoy rejects the clusters it is sent (a fake ADS client; test/helpers).
  xds = adsClient(`127.0.0.1:${a.proc.xdsPort}`, a.xdsTls);
  const md = new grpc.Metadata();
  md.set('x-isthmus-token', await a.token('cache-sidecar-proxy'));
  nacker = connectDelta(xds, 'cache-sidecar-proxy', md);
  nacker.send(TypeUrl.cluster, { subscribe: ['*'] });
  nacker.nack(await nacker.next(), nackMessage);
  await waitFor(
    async () =>
      (
        await b.api<{ Imported: { Services: { Name: string }[] }[] }>('GET', '/v1/ui/services')
      ).body.Imported[0]?.Services.some((s) => s.Name === 'api'),
    { timeoutMs: UI_WAIT, what: 'B imports api from cluster-a' },
  );
  browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox'] });
});

afterAll(async () => {
  for (const c of contexts) await c.close().catch(() => {});
  await browser?.close();
  nacker?.close();
  xds?.close();
  await meshes?.close();
});

beforeEach((ctx) => {
  current = undefined;
  ctx.onTestFailed(async () => {
    if (!current) return;
    mkdirSync(artifacts, { recursive: true });
    const name = ctx.task.name.replace(/[^a-z0-9]+/gi, '-').slice(0, 80);
    await current.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });
  });
});

/** A fresh tab on `node`'s UI; with `token`, as if the user had already entered it. */
async function open(node: MeshProcess, hash: string, token?: string): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1200, height: 760 } });
  contexts.push(context);
  if (token)
    await context.addInitScript(
      (t) => (globalThis as any).sessionStorage.setItem('isthmus-http-token', t),
      token,
    );
  const page = await context.newPage();
  current = page;
  await page.goto(`http://${node.httpAddress}/ui/#/${hash}`);
  return page;
}

/** No serious or critical axe-core violation on the page as it is now. */
async function expectAccessible(page: Page): Promise<void> {
  const result = await new AxeBuilder({ page }).analyze();
  const bad = result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join(', ')})`);
  expect(bad).toEqual([]);
}

async function screenshot(page: Page, name: string): Promise<void> {
  if (!screenshots) return;
  mkdirSync(screenshots, { recursive: true });
  await page.screenshot({ path: join(screenshots, `${name}.png`) });
}

const visible = { timeout: UI_WAIT };

describe('web UI', () => {
  it('asks for the token, then shows the overview: peering ACTIVE with its counts', async () => {
    // A peering whose token was never used: PENDING, so unhealthy, and listed before cluster-b.
    await meshes.a.api('POST', '/v1/peering/token', { PeerName: 'cluster-z' });
    const page = await open(meshes.a, 'overview');
    const prompt = page.getByRole('form', { name: 'This server needs an HTTP API token' });
    await prompt.waitFor(visible);
    await prompt.getByLabel('Token').fill(httpToken);
    await prompt.getByRole('button', { name: 'Use token' }).click();
    const row = page.locator('tr[data-peering="cluster-b"]');
    await row.getByText('ACTIVE').waitFor(visible);
    await expect(row.textContent()).resolves.toMatch(/cluster-b.*ACTIVE.*yes/);
    // Exported 1 (api); imported 0.
    await expect(row.locator('td').nth(4).textContent()).resolves.toBe('1');
    const order = await page
      .locator('tr[data-peering]')
      .evaluateAll((rows) => rows.map((r) => r.getAttribute('data-peering')));
    expect(order).toEqual(['cluster-z', 'cluster-b']);
    await expect(
      page.locator('tr[data-peering="cluster-z"]').getByText('PENDING').count(),
    ).resolves.toBe(1);
    await page.getByRole('heading', { name: 'CA roots' }).waitFor(visible);
    const root = page.locator('tr[data-root]').first();
    await expect(root.textContent()).resolves.toMatch(/active\d{4}-\d{2}-\d{2} \(in \d+ days\)/);
    // The cluster's servers (one here): this one, its addresses, and that it leads.
    const server = page.locator('tr', { hasText: '(this server)' });
    await expect(server.textContent()).resolves.toContain(meshes.a.httpAddress);
    await expect(server.textContent()).resolves.toContain('leader');
    await expectAccessible(page);
    await screenshot(page, 'overview');
  });

  it('counts the heartbeat age on in the browser between answers', async () => {
    const page = await open(meshes.b, 'overview');
    const heartbeat = page.locator('tr[data-peering="cluster-a"] td').nth(2);
    await heartbeat.getByText(/s ago$/).waitFor(visible);
    // From now on no answer reaches the page: whatever changes is the browser's clock.
    await page.route('**/v1/ui/overview', (route) => route.abort());
    const first = await heartbeat.textContent();
    await waitFor(async () => (await heartbeat.textContent()) !== first, {
      timeoutMs: UI_WAIT,
      what: `the heartbeat age to move on from ${first}`,
    });
    await expect(heartbeat.textContent()).resolves.toMatch(/^\d+s ago$/);
  });

  it('says so when the token in use is refused', async () => {
    const page = await open(meshes.a, 'overview', 'not-a-token-this-server-knows');
    const prompt = page.getByRole('form', { name: 'This server needs an HTTP API token' });
    await prompt.getByRole('alert').getByText('The server refused the token').waitFor(visible);
    await prompt.getByLabel('Token').fill(httpToken);
    await prompt.getByRole('button', { name: 'Use token' }).click();
    await page.locator('tr[data-peering="cluster-b"]').getByText('ACTIVE').waitFor(visible);
    await expect(prompt.count()).resolves.toBe(0);
  });

  it('names the missing scope when a token may not read', async () => {
    const created = await meshes.a.api<{ SecretID: string }>('POST', '/v1/acl/api-token', {
      Scope: 'peering',
    });
    const page = await open(meshes.a, 'services', created.body.SecretID);
    await page.getByRole('alert').getByText('Missing scope: read').waitFor(visible);
  });

  it('shows the service imported from the peer on B, and what web calls', async () => {
    const page = await open(meshes.b, 'services');
    await page.getByRole('heading', { name: 'Imported from cluster-a' }).waitFor(visible);
    const imported = page.locator('section', { hasText: 'Imported from cluster-a' });
    await imported.locator('tr[data-service="api"]').waitFor(visible);
    await expect(
      page.locator('tr[data-service="web"]').getByText('→ api?peer=cluster-a').count(),
    ).resolves.toBe(1);
    await expectAccessible(page);
    await screenshot(page, 'services');
  });

  it('shows which peers each local service is exported to', async () => {
    const page = await open(meshes.a, 'services', httpToken);
    const local = page.locator('section', { hasText: 'Local services' });
    const exportedTo = (service: string) =>
      local.locator(`tr[data-service="${service}"] td`).last().textContent();
    await local.locator('tr[data-service="api"]').waitFor(visible);
    await expect(exportedTo('api')).resolves.toBe('cluster-b');
    await expect(exportedTo('cache')).resolves.toBe('—');
    // The peer whose token was never used imports nothing yet.
    const pending = page.locator('section', { hasText: 'Imported from cluster-z' });
    await pending.getByText('None.').waitFor(visible);
  });

  it('shows the proxy that NACKed with Envoy’s message first, and its config', async () => {
    // A proxy in sync, whose ID sorts before cache's.
    const synced = await meshes.a.connect('api-sidecar-proxy');
    const page = await open(meshes.a, 'proxies', httpToken);
    const row = page.locator('tr[data-proxy="cache-sidecar-proxy"]');
    await row.getByText(nackMessage, { exact: false }).waitFor(visible);
    // The server the proxy is connected to, then its per-type state.
    const self = (
      await meshes.a.api<{ Name: string; Self: boolean }[]>('GET', '/v1/operator/servers')
    ).body.find((s) => s.Self)!.Name;
    await expect(row.locator('td').nth(1).textContent()).resolves.toBe(self);
    await expect(row.locator('td').nth(2).textContent()).resolves.toBe('NACKED');
    const api = page.locator('tr[data-proxy="api-sidecar-proxy"]');
    await api.locator('td').nth(2).getByText('SYNCED').waitFor(visible);
    const order = await page
      .locator('tr[data-proxy]')
      .evaluateAll((rows) => rows.map((r) => r.getAttribute('data-proxy')));
    expect(order).toEqual(['cache-sidecar-proxy', 'api-sidecar-proxy']);
    await expectAccessible(page);
    await screenshot(page, 'proxies');
    synced.close();
    await api.waitFor({ state: 'detached', ...visible });
    await row.getByRole('link', { name: 'cache-sidecar-proxy' }).click();
    await page.getByRole('heading', { name: 'Proxy cache-sidecar-proxy' }).waitFor(visible);
    await page.getByText('local_app').first().waitFor(visible);
    // The xDS types are WAI-ARIA tabs: arrow keys move between them.
    await page.getByRole('tab', { name: 'clusters' }).focus();
    await page.keyboard.press('ArrowRight');
    const listeners = page.getByRole('tab', { name: 'listeners' });
    await expect(listeners.getAttribute('aria-selected')).resolves.toBe('true');
    await expect(
      listeners.evaluate((el) => el === (globalThis as any).document.activeElement),
    ).resolves.toBe(true);
    await page
      .getByRole('tabpanel', { name: 'listeners' })
      .getByText('public_listener')
      .first()
      .waitFor(visible);
    await page.locator('summary', { hasText: 'public_listener' }).first().click();
    await screenshot(page, 'proxy-detail');
    await listeners.focus();
    await page.keyboard.press('End');
    await expect(
      page.getByRole('tab', { name: 'secrets' }).getAttribute('aria-selected'),
    ).resolves.toBe('true');
    await page.locator('summary').first().click();
    await expect(page.locator('pre').first().textContent()).resolves.toContain('[redacted]');
    await expectAccessible(page);
  });

  it('shows a proxy connect, NACK and leave live', async () => {
    const page = await open(meshes.a, 'proxies', httpToken);
    await page.locator('tr[data-proxy="cache-sidecar-proxy"]').waitFor(visible);
    await page.evaluate(() => {
      (globalThis as any).marker = 'no reload';
    });
    const md = new grpc.Metadata();
    md.set('x-isthmus-token', await meshes.a.token('api-sidecar-proxy'));
    const envoy = connectDelta(xds, 'api-sidecar-proxy', md);
    try {
      envoy.send(TypeUrl.cluster, { subscribe: ['*'] });
      const row = page.locator('tr[data-proxy="api-sidecar-proxy"]');
      await row.waitFor(visible);
      envoy.nack(await envoy.next(), 'api: live NACK');
      await row.getByText('CDS: api: live NACK').waitFor(visible);
      await expect(row.locator('td').nth(2).textContent()).resolves.toBe('NACKED');
    } finally {
      envoy.close();
    }
    await page
      .locator('tr[data-proxy="api-sidecar-proxy"]')
      .waitFor({ state: 'detached', ...visible });
    await expect(page.evaluate(() => (globalThis as any).marker)).resolves.toBe('no reload');
  });

  it('adds the edge of a new intention live, and explains the call', async () => {
    const page = await open(meshes.a, 'topology', httpToken);
    await page.getByRole('heading', { name: 'Calls', exact: true }).waitFor(visible);
    const edge = page.locator('tr[data-edge="cluster-b/web>api"]');
    await expect(edge.count()).resolves.toBe(0);
    await page.evaluate(() => {
      (globalThis as any).marker = 'no reload';
    });
    const written = Date.now();
    await meshes.a.putConfig({
      Kind: 'service-intentions',
      Name: 'api',
      Sources: [{ Name: 'web', Peer: 'cluster-b', Action: 'allow' }],
    });
    await edge.waitFor(visible);
    console.log(`topology edge shown ${Date.now() - written} ms after the intention was written`);
    await expect(edge.textContent()).resolves.toMatch(/web \(peer cluster-b\).*api.*allow/);
    await expect(page.locator('path[data-edge="cluster-b/web>api"]').count()).resolves.toBe(1);
    await expect(page.evaluate(() => (globalThis as any).marker)).resolves.toBe('no reload');
    await page.getByLabel('Caller', { exact: true }).selectOption('cluster-b/web');
    await page.getByLabel('Callee', { exact: true }).selectOption('api');
    await page.getByRole('button', { name: 'Check' }).click();
    await page.getByText('allowed by intention web (peer cluster-b) → api').waitFor(visible);
    await page.getByText('api is exported to cluster-b').waitFor(visible);
    // No mesh gateway in A: the call cannot come in, and the answer says what to register.
    const answer = page.locator('.checklist');
    await answer.getByText('blocked by mesh gateway registered').waitFor(visible);
    await answer
      .locator('li.failed', { hasText: 'no mesh gateway is registered in dc-a' })
      .getByText('Fix: peered traffic enters and leaves through mesh gateways')
      .waitFor(visible);
    await expectAccessible(page);
    await screenshot(page, 'topology');
    await page.getByLabel('Callee', { exact: true }).selectOption('cache');
    await page.getByRole('button', { name: 'Check' }).click();
    await answer.getByText('blocked by mesh gateway registered, export').waitFor(visible);
    await answer
      .locator('li.failed', { hasText: 'cache is not exported to cluster-b' })
      .getByText('Fix: add cluster-b to the consumers of cache')
      .waitFor(visible);
  });

  it('the main navigation works from the keyboard', async () => {
    const page = await open(meshes.b, 'overview');
    await page.getByRole('heading', { name: 'Overview' }).waitFor(visible);
    const services = page.getByRole('navigation', { name: 'Main' }).getByRole('link', {
      name: 'Services',
    });
    for (let i = 0; i < 10; i++) {
      await page.keyboard.press('Tab');
      if (await services.evaluate((el) => el === (globalThis as any).document.activeElement)) break;
    }
    await expect(
      services.evaluate((el) => el === (globalThis as any).document.activeElement),
    ).resolves.toBe(true);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Services', level: 1 }).waitFor(visible);
    expect(page.url()).toMatch(/#\/services$/);
  });
});
