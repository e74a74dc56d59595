import { afterAll, describe, expect, it } from 'vitest';
import { validateJson } from '../helpers/pgv.js';
import { cleanupProcesses, runCli } from '../helpers/process.js';

const BOOTSTRAP = 'envoy.config.bootstrap.v3.Bootstrap';

afterAll(cleanupProcesses);

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
    const json = await bootstrap(['--proxy-id', 'web-sidecar-proxy']);
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
    ]);
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
    });
    expect(
      json.static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint
        .address.socket_address,
    ).toEqual({ address: '10.0.0.9', port_value: 8502 });
    expect(json.dynamic_resources.ads_config.grpc_services[0].initial_metadata).toEqual([
      { key: 'x-isthmus-token', value: 'env-token' },
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
