import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRoot } from '../../src/ca/x509.js';
import { validateJson } from '../helpers/pgv.js';
import {
  cleanupProcesses,
  freePort,
  runCli,
  startServerProcess,
  tempDir,
} from '../helpers/process.js';

const BOOTSTRAP = 'envoy.config.bootstrap.v3.Bootstrap';

afterAll(cleanupProcesses);

/** A CA root in a PEM file, as `isthmus ca roots --pem > roots.pem` writes one. */
let caFile: string;
let caPem: string;
let notPemFile: string;
beforeAll(async () => {
  const root = await createRoot({
    rootUri: 'spiffe://11111111-2222-4333-8444-555555555555.consul',
    name: 'test root',
    now: Date.now(),
    validityMs: 3_600_000,
  });
  caPem = root.certPem;
  const dir = tempDir('isthmus-bootstrap-');
  caFile = join(dir, 'roots.pem');
  writeFileSync(caFile, caPem);
  notPemFile = join(dir, 'notes.txt');
  writeFileSync(notPemFile, 'not a certificate\n');
});

/** The xDS cluster's TLS context, or undefined when it has none (plaintext). */
function xdsTlsContext(json: any): any {
  return json.static_resources.clusters[0].transport_socket?.typed_config;
}

async function bootstrap(args: readonly string[], env?: Record<string, string>): Promise<any> {
  const run = await runCli(['envoy', 'bootstrap', ...args], env ? { env } : {});
  expect(run.stderr).toBe('');
  expect(run.code).toBe(0);
  const json = JSON.parse(run.stdout);
  expect(validateJson(BOOTSTRAP, json)).toEqual([]);
  return json;
}

describe('isthmus envoy bootstrap', () => {
  it('prints a valid sidecar bootstrap with the defaults', async () => {
    const json = await bootstrap(['--proxy-id', 'web-sidecar-proxy', '--xds-ca-file', caFile]);
    expect(json.node).toEqual({
      id: 'web-sidecar-proxy',
      cluster: 'web-sidecar-proxy',
      metadata: { isthmus_kind: 'connect-proxy', isthmus_datacenter: 'dc1' },
    });
    expect(json.admin.address.socket_address).toEqual({ address: '127.0.0.1', port_value: 19000 });
    const [xds] = json.static_resources.clusters;
    expect(xds.type).toBe('STATIC');
    expect(
      xds.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address,
    ).toEqual({ address: '127.0.0.1', port_value: 8502 });
    expect(json.dynamic_resources.ads_config.api_type).toBe('DELTA_GRPC');
    expect(json.dynamic_resources.ads_config.grpc_services[0].initial_metadata).toBeUndefined();
    const tls = xdsTlsContext(json);
    expect(tls.sni).toBe('xds.isthmus.internal');
    expect(tls.common_tls_context.validation_context).toEqual({
      trusted_ca: { inline_string: `${caPem.trimEnd()}\n` },
      match_typed_subject_alt_names: [
        { san_type: 'DNS', matcher: { exact: 'xds.isthmus.internal' } },
      ],
    });
  });

  it('prints a valid mesh gateway bootstrap with every flag', async () => {
    const json = await bootstrap([
      '--proxy-id',
      'mesh-gateway',
      '--gateway',
      'mesh',
      '--admin-bind',
      '[::1]:19005',
      '--xds-addr',
      'isthmus-dc2:9502',
      '--token',
      'b1e7f3a0-1234-4cde-9f00-0123456789ab',
      '--cluster',
      'gateways',
      '--datacenter',
      'dc2',
      '--xds-plaintext',
    ]);
    expect(xdsTlsContext(json)).toBeUndefined();
    expect(json.node).toEqual({
      id: 'mesh-gateway',
      cluster: 'gateways',
      metadata: { isthmus_kind: 'mesh-gateway', isthmus_datacenter: 'dc2' },
    });
    expect(json.admin.address.socket_address).toEqual({ address: '::1', port_value: 19005 });
    const [xds] = json.static_resources.clusters;
    expect(xds.type).toBe('STRICT_DNS');
    expect(
      xds.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address,
    ).toEqual({ address: 'isthmus-dc2', port_value: 9502 });
    expect(json.dynamic_resources.ads_config.grpc_services[0].initial_metadata).toEqual([
      { key: 'x-isthmus-token', value: 'b1e7f3a0-1234-4cde-9f00-0123456789ab' },
    ]);
  });

  it('takes the xDS address and token from ISTHMUS_XDS_ADDR and ISTHMUS_PROXY_TOKEN', async () => {
    const json = await bootstrap(['--proxy-id', 'api-sidecar-proxy'], {
      ISTHMUS_XDS_ADDR: '10.0.0.9:8502',
      ISTHMUS_PROXY_TOKEN: 'env-token',
      ISTHMUS_XDS_CA_FILE: caFile,
      ISTHMUS_XDS_SERVER_NAME: 'xds.dc1.example.com',
    });
    expect(xdsTlsContext(json).sni).toBe('xds.dc1.example.com');
    expect(
      json.static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint
        .address.socket_address,
    ).toEqual({ address: '10.0.0.9', port_value: 8502 });
    expect(json.dynamic_resources.ads_config.grpc_services[0].initial_metadata).toEqual([
      { key: 'x-isthmus-token', value: 'env-token' },
    ]);
  });

  it('lists several xDS servers (repeated --xds-addr and comma lists): one endpoint each, STRICT_DNS when one is a name', async () => {
    const endpointsOf = (json: any) =>
      json.static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints.map(
        (lb: any) => lb.endpoint.address.socket_address,
      );
    const ips = await bootstrap([
      '--proxy-id',
      'web',
      '--xds-ca-file',
      caFile,
      '--xds-addr',
      '10.0.0.1:8502,10.0.0.2:8502',
      '--xds-addr',
      '[fd00::3]:8503',
    ]);
    expect(ips.static_resources.clusters[0].type).toBe('STATIC');
    expect(endpointsOf(ips)).toEqual([
      { address: '10.0.0.1', port_value: 8502 },
      { address: '10.0.0.2', port_value: 8502 },
      { address: 'fd00::3', port_value: 8503 },
    ]);
    // TLS as with one server: every server of a cluster carries the same name under the same roots.
    expect(xdsTlsContext(ips).sni).toBe('xds.isthmus.internal');
    const named = await bootstrap(['--proxy-id', 'web', '--xds-ca-file', caFile], {
      ISTHMUS_XDS_ADDR: 'isthmus-1:8502, isthmus-2:8502',
    });
    expect(named.static_resources.clusters[0].type).toBe('STRICT_DNS');
    expect(endpointsOf(named)).toEqual([
      { address: 'isthmus-1', port_value: 8502 },
      { address: 'isthmus-2', port_value: 8502 },
    ]);
  });

  it.each([
    [[], /required option '--proxy-id <ID>' not specified/],
    [['--proxy-id', ''], /--proxy-id must be 1-256 characters/],
    [
      ['--proxy-id', 'web', '--gateway', 'ingress'],
      /'--gateway <KIND>' argument 'ingress' is invalid\. Allowed choices are mesh/,
    ],
    [['--proxy-id', 'web', '--xds-addr', 'localhost'], /--xds-addr: "localhost" is not HOST:PORT/],
    [
      ['--proxy-id', 'web', '--xds-addr', '127.0.0.1:0'],
      /--xds-addr: "127\.0\.0\.1:0" needs a port Envoy can dial/,
    ],
    [
      ['--proxy-id', 'web', '--xds-addr', '0.0.0.0:8502'],
      /--xds-addr: "0\.0\.0\.0:8502" is a wildcard listen address/,
    ],
    [
      ['--proxy-id', 'web', '--xds-addr', '10.0.0.1:8502,,10.0.0.2:8502'],
      /--xds-addr: an empty address in the list/,
    ],
    [
      ['--proxy-id', 'web', '--xds-addr', '10.0.0.1:8502', '--xds-addr', '10.0.0.1:8502'],
      /--xds-addr: "10\.0\.0\.1:8502" is listed twice/,
    ],
    [
      ['--proxy-id', 'web', '--admin-bind', '127.0.0.1:70000'],
      /--admin-bind: "127\.0\.0\.1:70000" is not HOST:PORT/,
    ],
    [
      ['--proxy-id', 'web', '--admin-bind', 'localhost:19000'],
      /--admin-bind: "localhost:19000" must be an IP address and port, not a host name .*e\.g\. 127\.0\.0\.1:19000/,
    ],
    [['--proxy-id', 'web', '--datacenter', 'DC 1'], /--datacenter: "DC 1" must be lowercase/],
    [['--proxy-id', 'web', '--bogus'], /unknown option '--bogus'/],
  ])('%j is a usage error: exit 2, one line, nothing on stdout', async (args, message) => {
    const run = await runCli(['envoy', 'bootstrap', ...args]);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(/^isthmus: [^\n]+\n$/);
    expect(run.stderr).toMatch(message);
  });

  it.each([
    [
      ['--xds-ca-file', '/nonexistent/roots.pem'],
      /--xds-ca-file: cannot read "\/nonexistent\/roots\.pem"/,
    ],
    [['--xds-ca-file', 'NOT_PEM'], /--xds-ca-file: .* must hold PEM CA certificates only/],
    [['--xds-plaintext', '--xds-server-name', 'x.example'], /--xds-plaintext writes no TLS/],
    [['--xds-server-name', 'not a name'], /--xds-server-name: "not a name" is not a DNS name/],
  ])('%j is a usage error: exit 2, one line', async (args, message) => {
    const given = args.map((a) => (a === 'NOT_PEM' ? notPemFile : a));
    const run = await runCli(['envoy', 'bootstrap', '--proxy-id', 'web', ...given]);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(/^isthmus: [^\n]+\n$/);
    expect(run.stderr).toMatch(message);
  });

  it('without --xds-ca-file asks the server (GET /v1/xds/server): its roots and server name', async () => {
    const server = await startServerProcess();
    const json = await bootstrap([
      '--proxy-id',
      'web-sidecar-proxy',
      '--http-addr',
      `127.0.0.1:${server.httpPort}`,
    ]);
    const roots = (await (await fetch(server.url('/v1/connect/ca/roots'))).json()) as {
      Roots: { RootCert: string }[];
    };
    const tls = xdsTlsContext(json);
    expect(tls.sni).toBe('xds.isthmus.internal');
    expect(tls.common_tls_context.validation_context.trusted_ca.inline_string).toBe(
      `${roots.Roots.map((r) => r.RootCert.trimEnd()).join('\n')}\n`,
    );
  });

  it('refuses to write a plaintext bootstrap for a plaintext server unless told --xds-plaintext', async () => {
    const server = await startServerProcess(['--xds-plaintext']);
    const args = [
      'envoy',
      'bootstrap',
      '--proxy-id',
      'web',
      '--http-addr',
      `127.0.0.1:${server.httpPort}`,
    ];
    const refused = await runCli(args);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toMatch(
      /^isthmus: the server at http:\/\/127\.0\.0\.1:\d+ serves xDS in plaintext \(--xds-plaintext\); pass --xds-plaintext to write a plaintext bootstrap\n$/,
    );
    const plain = await bootstrap([...args.slice(2), '--xds-plaintext']);
    expect(xdsTlsContext(plain)).toBeUndefined();
  });

  it('says how to go on when the HTTP API cannot be reached', async () => {
    const port = await freePort();
    const run = await runCli([
      'envoy',
      'bootstrap',
      '--proxy-id',
      'web',
      '--http-addr',
      `127.0.0.1:${port}`,
    ]);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(
      /^isthmus: cannot reach the isthmus HTTP API at http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED; give the roots with --xds-ca-file instead, or --http-addr where the server's API is\n$/,
    );
  });

  it('never echoes a malformed token in its error', async () => {
    const run = await runCli([
      'envoy',
      'bootstrap',
      '--proxy-id',
      'web',
      '--token',
      'secret with spaces',
    ]);
    expect(run.code).toBe(2);
    expect(run.stderr).toBe('isthmus: --token must be non-empty visible ASCII without spaces\n');
  });
});
