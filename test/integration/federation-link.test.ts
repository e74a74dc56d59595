/**
 * WAN federation's control plane between two real servers (docs/architecture.md §6c): a secondary
 * joins the primary (an intermediate CA for its own key, the Join authenticated both ways by the
 * shared secret), keeps a mutually authenticated Replicate stream, and then agrees with the primary
 * on the CA roots and trust domain, the datacenters and the config entries; a config write on the
 * secondary is forwarded to the primary. Here the secondary is given the primary's federation
 * port as its "gateway"; test/envoy would put real mesh gateways in between.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import type { CaRootsJson } from '../../src/api/ca-routes.js';
import type { RunningServer } from '../../src/server.js';
import { federationServerSpiffeId } from '../../src/mesh/names.js';
import { startFederationServer } from '../helpers/federation-server.js';
import { waitFor } from '../helpers/wait.js';

const dirs: string[] = [];
const servers: RunningServer[] = [];
const dir = () => {
  const d = mkdtempSync(join(tmpdir(), 'isthmus-fed-'));
  dirs.push(d);
  return d;
};

async function start(
  dc: string,
  flags: Record<string, string>,
  dataDir = dir(),
): Promise<RunningServer> {
  const server = await startFederationServer(dc, dataDir, flags);
  servers.push(server);
  return server;
}

const get = async <T>(s: RunningServer, path: string): Promise<T> =>
  (await (await fetch(`http://127.0.0.1:${s.httpPort}${path}`)).json()) as T;

describe('WAN federation link between a primary and a secondary', () => {
  afterAll(async () => {
    for (const s of servers.reverse()) await s.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('joins, shares one trust domain, replicates config entries and forwards local writes', async () => {
    const secret = join(dir(), 'secret');
    writeFileSync(secret, 'federation-secret-of-this-test\n');
    const primary = await start('dc1', { federationSecretFile: secret });
    await primary.catalog.putConfigEntry({
      Kind: 'service-defaults',
      Name: 'api',
      Protocol: 'http',
    });
    const secondary = await start('dc2', {
      federationSecretFile: secret,
      primaryGateways: `127.0.0.1:${primary.federationPort}`,
    });

    const [r1, r2] = [
      await get<CaRootsJson>(primary, '/v1/connect/ca/roots'),
      await get<CaRootsJson>(secondary, '/v1/connect/ca/roots'),
    ];
    expect(r2.TrustDomain).toBe(r1.TrustDomain);
    expect(r2.ActiveRootID).toBe(r1.ActiveRootID);

    // A secondary leaf chains through its intermediate to the primary's root.
    const leaf = await secondary.ca.leaf({
      spiffeId: federationServerSpiffeId(r1.TrustDomain, 'dc2'),
    });
    const [cert, intermediate] = leaf.certPem
      .match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)!
      .map((p) => new X509Certificate(p));
    const root = new X509Certificate(r1.Roots[0]!.RootCert);
    expect(cert!.verify(intermediate!.publicKey)).toBe(true);
    expect(intermediate!.verify(root.publicKey)).toBe(true);
    expect(intermediate!.ca).toBe(true);

    await waitFor(
      async () =>
        JSON.stringify(await get(secondary, '/v1/catalog/datacenters')) === '["dc1","dc2"]' &&
        JSON.stringify(await get(primary, '/v1/catalog/datacenters')) === '["dc1","dc2"]',
      { timeoutMs: 20_000, intervalMs: 50, what: 'both servers to list dc1 and dc2' },
    );
    await waitFor(
      async () => secondary.catalog.configRecord('service-defaults', 'api') !== undefined,
      {
        timeoutMs: 20_000,
        intervalMs: 50,
        what: "the primary's service-defaults on the secondary",
      },
    );
    // A later write on the primary reaches the secondary too, and a delete.
    await primary.catalog.putConfigEntry({
      Kind: 'service-intentions',
      Name: 'api',
      Sources: [{ Name: 'web', Action: 'allow' }],
    });
    await primary.catalog.deleteConfigEntry('service-defaults', 'api');
    await waitFor(
      async () =>
        secondary.catalog.configRecord('service-intentions', 'api') !== undefined &&
        secondary.catalog.configRecord('service-defaults', 'api') === undefined,
      {
        timeoutMs: 20_000,
        intervalMs: 50,
        what: 'the intention written and the defaults deleted on the secondary',
      },
    );

    // A write on the secondary is forwarded to the primary (test/integration/federation-forward).
    const forwarded = await fetch(`http://127.0.0.1:${secondary.httpPort}/v1/config`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ Kind: 'service-defaults', Name: 'x', Protocol: 'http' }),
    });
    expect(forwarded.status).toBe(200);
    expect(primary.catalog.configRecord('service-defaults', 'x')).toBeDefined();
  }, 60_000);

  it('refuses a secondary whose secret differs, without signing anything', async () => {
    const good = join(dir(), 'good');
    const bad = join(dir(), 'bad');
    writeFileSync(good, 'the-right-federation-secret\n');
    writeFileSync(bad, 'another-federation-secret!!\n');
    const primary = await start('dc1', { federationSecretFile: good });
    await expect(
      start('dc3', {
        federationSecretFile: bad,
        primaryGateways: `127.0.0.1:${primary.federationPort}`,
      }),
    ).rejects.toThrow(/secret/);
  }, 60_000);

  it('with the primary down the secondary keeps serving what it replicated, refuses global writes naming the primary, and converges when it returns', async () => {
    const secret = join(dir(), 'secret');
    writeFileSync(secret, 'federation-secret-of-the-down-test\n');
    const primaryDir = dir();
    let primary = await start('dc1', { federationSecretFile: secret }, primaryDir);
    const fedPort = primary.federationPort!;
    await primary.catalog.putConfigEntry({
      Kind: 'service-intentions',
      Name: 'api',
      Sources: [{ Name: 'web', Action: 'allow' }],
    });
    const secondary = await start('dc2', {
      federationSecretFile: secret,
      primaryGateways: `127.0.0.1:${fedPort}`,
    });
    await waitFor(
      async () => secondary.catalog.configRecord('service-intentions', 'api') !== undefined,
      { timeoutMs: 20_000, intervalMs: 50, what: "the primary's intention on the secondary" },
    );
    const roots = await get<{ ActiveRootID: string }>(secondary, '/v1/connect/ca/roots');

    type Link = { PrimaryLink: { Connected: boolean; LastError: string } };
    await primary.stop();
    servers.splice(servers.indexOf(primary), 1);
    await waitFor(
      async () =>
        !(await get<Link>(secondary, '/v1/internal/federation-states')).PrimaryLink.Connected,
      { timeoutMs: 20_000, intervalMs: 50, what: 'the secondary to see its link down' },
    );
    // It keeps serving: the replicated entry and roots, and new registrations get leaves from its
    // own intermediate.
    expect(secondary.catalog.configRecord('service-intentions', 'api')).toBeDefined();
    expect(await get(secondary, '/v1/connect/ca/roots')).toMatchObject(roots);
    const reg = await fetch(`http://127.0.0.1:${secondary.httpPort}/v1/agent/service/register`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        Name: 'late',
        Port: 8080,
        Connect: { SidecarService: { Port: 21000 } },
      }),
    });
    expect(reg.status).toBe(200);
    const leaf = await secondary.ca.leaf({
      spiffeId: `spiffe://${(await get<{ TrustDomain: string }>(secondary, '/v1/connect/ca/roots')).TrustDomain}/ns/default/dc/dc2/svc/late`,
    });
    expect(leaf.certPem).toContain('BEGIN CERTIFICATE');
    const refused = await fetch(`http://127.0.0.1:${secondary.httpPort}/v1/config`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ Kind: 'service-defaults', Name: 'x', Protocol: 'http' }),
    });
    expect(refused.status).toBe(503);
    expect(((await refused.json()) as { error: string }).error).toContain('primary datacenter dc1');

    // The primary returns on its data directory and port: the link comes back by itself and a
    // write made there reaches the secondary.
    primary = await start(
      'dc1',
      { federationSecretFile: secret, federationAddr: `127.0.0.1:${fedPort}` },
      primaryDir,
    );
    await primary.catalog.putConfigEntry({
      Kind: 'service-defaults',
      Name: 'after',
      Protocol: 'http',
    });
    await waitFor(
      async () =>
        (await get<Link>(secondary, '/v1/internal/federation-states')).PrimaryLink.Connected &&
        secondary.catalog.configRecord('service-defaults', 'after') !== undefined,
      { timeoutMs: 30_000, intervalMs: 100, what: 'the link back and the new entry replicated' },
    );
  }, 90_000);
});
