import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { IsthmusError } from '../../src/errors.js';
import {
  formatHostPort,
  loadServerConfig,
  parseHostPort,
  resolveServerConfig,
  type ConfigSources,
} from '../../src/config/index.js';

const dir = mkdtempSync(join(tmpdir(), 'isthmus-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

function errorsOf(sources: Partial<ConfigSources>): readonly string[] {
  const result = resolveServerConfig({ flags: {}, env: {}, ...sources });
  if (result.ok) throw new Error(`expected errors, got ${JSON.stringify(result.value)}`);
  return result.error;
}

function configOf(sources: Partial<ConfigSources>) {
  return loadServerConfig({ flags: {}, env: {}, ...sources });
}

describe('loadServerConfig', () => {
  it('uses the documented defaults when nothing is set', () => {
    expect(configOf({})).toEqual({
      dataDir: './data',
      store: 'lmdb',
      etcdEndpoints: [],
      etcdPrefix: '',
      etcdCaFile: '',
      etcdCertFile: '',
      etcdKeyFile: '',
      etcdUsername: '',
      etcdPasswordFile: '',
      datacenter: 'dc1',
      httpAddr: { host: '127.0.0.1', port: 8500 },
      xdsAddr: { host: '127.0.0.1', port: 8502 },
      peeringAddr: { host: '127.0.0.1', port: 8503 },
      logLevel: 'info',
      xdsMaxStreams: 10000,
      xdsMaxRequestBytes: 4194304,
      xdsMaxStreamsPerToken: 8,
      xdsAdmissionTimeoutMs: 10000,
      coalesceMs: 100,
      caRotationPhaseMs: 60000,
      xdsAuth: 'token',
      insecureHttp: false,
      xdsTlsSan: [],
      xdsPlaintext: false,
      xdsPlaintextAllowRemote: false,
      peeringHeartbeatMs: 15000,
      peeringHeartbeatTimeoutMs: 120000,
      httpMaxBodyBytes: 4194304,
      httpMaxConnections: 1024,
      primaryDatacenter: '',
      primaryGateways: [],
      federationAddr: { host: '127.0.0.1', port: 8504 },
      federationSecretFile: '',
      nodeName: '',
    });
  });

  it('takes flag over env over file over default, per setting', () => {
    // A non-loopback HTTP address needs a token or insecure_http (tested in http-token.test.ts).
    const configFile = file(
      'prec.yaml',
      'datacenter: from-file\nhttp_addr: 10.0.0.1:1\nlog_level: warn\nxds_max_streams: 7\ninsecure_http: true\n',
    );
    const config = configOf({
      flags: { datacenter: 'from-flag' },
      env: { ISTHMUS_DATACENTER: 'from-env', ISTHMUS_HTTP_ADDR: '10.0.0.2:2' },
      configFile,
    });
    expect(config.datacenter).toBe('from-flag');
    expect(config.httpAddr).toEqual({ host: '10.0.0.2', port: 2 });
    expect(config.logLevel).toBe('warn');
    expect(config.xdsMaxStreams).toBe(7);
    expect(config.xdsAddr).toEqual({ host: '127.0.0.1', port: 8502 });
  });

  it('reads every setting from environment variables and ignores empty ones', () => {
    const config = configOf({
      env: {
        ISTHMUS_DATA_DIR: '/var/lib/isthmus',
        ISTHMUS_DATACENTER: '',
        ISTHMUS_XDS_ADDR: '0.0.0.0:18502',
        ISTHMUS_PEERING_ADDR: '[::]:18503',
        ISTHMUS_LOG_LEVEL: 'debug',
        ISTHMUS_XDS_MAX_STREAMS: '42',
      },
    });
    expect(config).toMatchObject({
      dataDir: '/var/lib/isthmus',
      datacenter: 'dc1',
      xdsAddr: { host: '0.0.0.0', port: 18502 },
      peeringAddr: { host: '::', port: 18503 },
      logLevel: 'debug',
      xdsMaxStreams: 42,
    });
  });

  it('reads JSON config files', () => {
    const configFile = file(
      'c.json',
      JSON.stringify({ data_dir: '/d', datacenter: 'east-1', xds_max_streams: 5 }),
    );
    expect(configOf({ configFile })).toMatchObject({
      dataDir: '/d',
      datacenter: 'east-1',
      xdsMaxStreams: 5,
    });
  });

  it('accepts an empty YAML file as "no settings"', () => {
    expect(configOf({ configFile: file('empty.yml', '') }).datacenter).toBe('dc1');
  });

  it('collects every error, each naming where the bad value came from and what is allowed', () => {
    const configFile = file('bad.yaml', 'log_level: loud\n');
    const errors = errorsOf({
      flags: { httpAddr: 'foo', datacenter: 'DC_1' },
      env: { ISTHMUS_XDS_MAX_STREAMS: '0' },
      configFile,
    });
    expect(errors).toEqual([
      `--datacenter: "DC_1" is not a datacenter name (1-63 lowercase letters, digits or '-', starting and ending with a letter or digit)`,
      '--http-addr: "foo" is not HOST:PORT (port 0-65535)',
      `log_level in "${configFile}": "loud" is not one of fatal, error, warn, info, debug, trace, silent`,
      'ISTHMUS_XDS_MAX_STREAMS: "0" is not a whole number from 1 to 1000000',
    ]);
  });

  it('validates only the value that wins', () => {
    expect(
      configOf({ flags: { httpAddr: '127.0.0.1:1' }, env: { ISTHMUS_HTTP_ADDR: 'nope' } }).httpAddr
        .port,
    ).toBe(1);
  });

  it('throws one invalid_argument IsthmusError listing every problem', () => {
    const err = (() => {
      try {
        configOf({ flags: { httpAddr: 'nope', xdsAddr: 'nope' } });
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(IsthmusError);
    expect((err as IsthmusError).code).toBe('invalid_argument');
    expect((err as IsthmusError).message).toBe(
      '--http-addr: "nope" is not HOST:PORT (port 0-65535); --xds-addr: "nope" is not HOST:PORT (port 0-65535)',
    );
  });

  it.each([
    ['a', true],
    ['dc-1', true],
    ['a'.repeat(63), true],
    ['a'.repeat(64), false],
    ['-dc', false],
    ['dc-', false],
    ['Dc1', false],
    ['dc_1', false],
    ['dc.1', false],
  ])('datacenter %j valid: %s', (name, valid) => {
    const result = resolveServerConfig({ flags: { datacenter: name }, env: {} });
    expect(result.ok).toBe(valid);
  });

  it.each(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])(
    'accepts log level %s',
    (level) => {
      expect(configOf({ flags: { logLevel: level } }).logLevel).toBe(level);
    },
  );

  it.each(['1.5', '-1', '1e3', 'ten', '1000001'])('rejects --xds-max-streams %s', (n) => {
    expect(errorsOf({ flags: { xdsMaxStreams: n } })[0]).toMatch(
      /^--xds-max-streams: ".*" is not a whole number from 1 to 1000000$/,
    );
  });

  it('rejects a wrongly typed file value', () => {
    const configFile = file('typed.yaml', 'data_dir: 5\nxds_max_streams: "many"\n');
    expect(errorsOf({ configFile })).toEqual([
      `data_dir in "${configFile}": 5 is not a non-empty string`,
      `xds_max_streams in "${configFile}": "many" is not a whole number from 1 to 1000000`,
    ]);
  });
});

describe('config file problems', () => {
  it('names an unknown key and lists the allowed ones', () => {
    const configFile = file('unknown.yaml', 'datacenter: dc2\nhttp_port: 80\n');
    const [error] = errorsOf({ configFile });
    expect(error).toContain(`unknown key "http_port"`);
    expect(error).toContain(
      'allowed: data_dir, store, etcd_endpoints, etcd_prefix, etcd_ca_file, etcd_cert_file, etcd_key_file, etcd_username, etcd_password_file, datacenter, http_addr, xds_addr, peering_addr, log_level, xds_max_streams',
    );
  });

  it('rejects camelCase keys (the file uses snake_case)', () => {
    expect(errorsOf({ configFile: file('camel.json', '{"dataDir": "/x"}') })[0]).toContain(
      'unknown key "dataDir"',
    );
  });

  it('reports a missing file, an unknown extension, bad syntax and a non-mapping document', () => {
    expect(errorsOf({ configFile: join(dir, 'missing.yaml') })[0]).toMatch(
      /^--config: cannot read ".*missing.yaml": ENOENT$/,
    );
    expect(errorsOf({ configFile: file('c.toml', 'a = 1') })[0]).toMatch(
      /must end in \.yaml, \.yml or \.json$/,
    );
    expect(errorsOf({ configFile: file('broken.json', '{') })[0]).toMatch(
      /^--config: ".*broken.json" is not valid JSON: /,
    );
    expect(errorsOf({ configFile: file('broken.yaml', 'a: [') })[0]).toMatch(
      /^--config: ".*broken.yaml" is not valid YAML: /,
    );
    expect(errorsOf({ configFile: file('list.yaml', '- a\n- b\n') })[0]).toMatch(
      /must hold a mapping of settings$/,
    );
  });
});

describe('parseHostPort', () => {
  it.each([
    ['127.0.0.1:8500', { host: '127.0.0.1', port: 8500 }],
    ['localhost:0', { host: 'localhost', port: 0 }],
    ['0.0.0.0:65535', { host: '0.0.0.0', port: 65535 }],
    ['[::1]:8500', { host: '::1', port: 8500 }],
    ['[fe80::1]:1', { host: 'fe80::1', port: 1 }],
    ['isthmus.example.com:443', { host: 'isthmus.example.com', port: 443 }],
  ])('parses %s', (text, expected) => {
    expect(parseHostPort(text)).toEqual(expected);
  });

  it.each([
    'nope',
    '127.0.0.1',
    ':8500',
    '127.0.0.1:',
    '127.0.0.1:65536',
    '::1:8500',
    '[::1]',
    '[nothost]:1',
    '[127.0.0.1]:1',
    'a b:1',
    'host:-1',
    'host:123456',
  ])('rejects %j', (text) => {
    expect(parseHostPort(text)).toBeUndefined();
  });

  it('formats IPv6 hosts with brackets, optionally with another port', () => {
    expect(formatHostPort({ host: '::1', port: 8500 })).toBe('[::1]:8500');
    expect(formatHostPort({ host: '127.0.0.1', port: 0 }, 4242)).toBe('127.0.0.1:4242');
  });
});
