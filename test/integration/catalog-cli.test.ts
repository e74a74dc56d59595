import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ApiServer, startApiServer } from '../helpers/api-server.js';
import { cleanupProcesses, runCli, tempDir } from '../helpers/process.js';

/**
 * `isthmus services …` and `isthmus config …` as real CLI processes against an in-process server.
 */
const token = 'cli-token-0123456789';
let api: ApiServer;
let dir: string;
beforeAll(async () => {
  api = await startApiServer({ flags: { httpToken: token } });
  dir = tempDir();
});
afterAll(async () => {
  await api.stop();
  await cleanupProcesses();
});

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

/** A loopback port nothing listens on (just released). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const cli = (args: string[], env: Record<string, string> = {}) =>
  runCli(args, {
    env: {
      ISTHMUS_HTTP_ADDR: `127.0.0.1:${api.server.httpPort}`,
      ISTHMUS_HTTP_TOKEN: token,
      ...env,
    },
  });

describe('isthmus services', () => {
  it('registers from a JSON file and a YAML file, lists (pretty and json), deregisters', async () => {
    const json = file(
      'web.json',
      JSON.stringify({
        Name: 'web',
        Address: '10.0.0.5',
        Port: 8080,
        Connect: {
          SidecarService: {
            Proxy: { Upstreams: [{ DestinationName: 'db', LocalBindPort: 9191 }] },
          },
        },
      }),
    );
    const yaml = file(
      'db.yaml',
      'Name: db\nAddress: 10.0.0.7\nPort: 5432\nTags: [primary]\nCheck:\n  TTL: 30s\n',
    );
    expect(await cli(['services', 'register', json])).toMatchObject({
      code: 0,
      stdout: 'Registered service: web\nRegistered service: web-sidecar-proxy',
      stderr: '',
    });
    expect(await cli(['services', 'register', yaml])).toMatchObject({
      code: 0,
      stdout: 'Registered service: db',
    });

    const pretty = await cli(['services', 'list']);
    expect(pretty.code).toBe(0);
    expect(pretty.stdout.split('\n')).toEqual([
      expect.stringMatching(/^ID +NAME +KIND +ADDRESS +HEALTH +TAGS$/),
      expect.stringMatching(/^db +db +typical +10\.0\.0\.7:5432 +critical +primary$/),
      expect.stringMatching(/^web +web +typical +10\.0\.0\.5:8080 +passing$/),
      expect.stringMatching(
        /^web-sidecar-proxy +web-sidecar-proxy +connect-proxy +10\.0\.0\.5:21000 +passing$/,
      ),
    ]);
    const asJson = await cli(['services', 'list', '--format', 'json']);
    expect(JSON.parse(asJson.stdout)).toEqual([
      {
        ID: 'db',
        Name: 'db',
        Kind: 'typical',
        Address: '10.0.0.7',
        Port: 5432,
        Health: 'critical',
        Tags: ['primary'],
      },
      {
        ID: 'web',
        Name: 'web',
        Kind: 'typical',
        Address: '10.0.0.5',
        Port: 8080,
        Health: 'passing',
        Tags: [],
      },
      {
        ID: 'web-sidecar-proxy',
        Name: 'web-sidecar-proxy',
        Kind: 'connect-proxy',
        Address: '10.0.0.5',
        Port: 21000,
        Health: 'passing',
        Tags: [],
      },
    ]);

    expect(await cli(['services', 'deregister', 'web'])).toMatchObject({
      code: 0,
      stdout: 'Deregistered service: web',
    });
    expect(api.server.catalog.allInstances().map((i) => i.id)).toEqual(['db']);
  });

  it('a bad file is one line naming the field, exit 1, and nothing registered', async () => {
    const bad = file(
      'bad.json',
      JSON.stringify({
        Name: 'api',
        Address: '10.0.0.9',
        Port: 80,
        Connect: {
          SidecarService: {
            Proxy: { Upstreams: [{ DestinationName: 'db', LocalBindPort: 99999 }] },
          },
        },
      }),
    );
    const res = await cli(['services', 'register', bad]);
    expect(res.code).toBe(1);
    expect(res.stdout).toBe('');
    expect(res.stderr).toBe(
      'isthmus: Connect.SidecarService.Proxy.Upstreams[0].LocalBindPort: must be an integer 1-65535 (got 99999) (HTTP 400)\n',
    );
    expect(api.server.catalog.instance('api')).toBeUndefined();

    const notYaml = await cli(['services', 'register', file('broken.json', '{"Name": ')]);
    expect(notYaml.code).toBe(1);
    expect(notYaml.stderr).toMatch(/^isthmus: ".*broken\.json" is not valid JSON: .*\n$/);
    const missing = await cli(['services', 'register', join(dir, 'nope.json')]);
    expect(missing).toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/^isthmus: cannot read ".*nope\.json": ENOENT\n$/),
    });
  });

  it('without the token the server refuses: exit 1 with the hint; usage errors exit 2', async () => {
    const res = await cli(['services', 'deregister', 'db'], { ISTHMUS_HTTP_TOKEN: '' });
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(
      /^isthmus: Permission denied: .*--token or ISTHMUS_HTTP_TOKEN.*\(HTTP 403\)\n$/,
    );
    expect((await cli(['services', 'list', '--format', 'yaml'])).code).toBe(2);
    expect((await cli(['services', 'list', '--http-addr', 'not an address'])).code).toBe(2);
    expect((await cli(['services', 'register'])).code).toBe(2);
    const port = await closedPort();
    const down = await cli(['services', 'list', '--http-addr', `127.0.0.1:${port}`]);
    expect(down).toMatchObject({
      code: 1,
      stderr: `isthmus: cannot reach the isthmus HTTP API at http://127.0.0.1:${port}: ECONNREFUSED\n`,
    });
  });
});

describe('isthmus config', () => {
  it('writes, reads, lists and deletes entries', async () => {
    const entry = file('sd.yaml', 'Kind: service-defaults\nName: web\nProtocol: http\n');
    expect(await cli(['config', 'write', entry])).toMatchObject({
      code: 0,
      stdout: 'Config entry written: service-defaults/web',
    });
    const read = await cli(['config', 'read', 'service-defaults', 'web']);
    expect(JSON.parse(read.stdout)).toMatchObject({
      Kind: 'service-defaults',
      Name: 'web',
      Protocol: 'http',
      CreateIndex: expect.any(Number),
    });
    const list = await cli(['config', 'list', 'service-defaults']);
    expect(list.stdout.split('\n')).toEqual([
      expect.stringMatching(/^NAME +MODIFY INDEX$/),
      expect.stringMatching(/^web +\d+$/),
    ]);
    expect(
      JSON.parse((await cli(['config', 'list', 'service-defaults', '--format', 'json'])).stdout),
    ).toHaveLength(1);
    const bad = await cli([
      'config',
      'write',
      file('bad.yaml', 'Kind: service-defaults\nName: web\nProtocol: quic\n'),
    ]);
    expect(bad).toMatchObject({
      code: 1,
      stderr:
        'isthmus: Protocol: must be one of "tcp", "http", "http2", "grpc" (got "quic") (HTTP 400)\n',
    });
    expect(await cli(['config', 'delete', 'service-defaults', 'web'])).toMatchObject({
      code: 0,
      stdout: 'Config entry deleted: service-defaults/web',
    });
    expect(await cli(['config', 'read', 'service-defaults', 'web'])).toMatchObject({
      code: 1,
      stderr: 'isthmus: config entry service-defaults/web not found (HTTP 404)\n',
    });
    expect((await cli(['config', 'list', 'nope'])).stderr).toMatch(
      /^isthmus: Kind: "nope" is not one of "proxy-defaults"/,
    );
  });

  it("service-resolver: written from YAML, read back in Consul's shape, checked against peers and loops", async () => {
    const resolver = file(
      'api-resolver.yaml',
      [
        'Kind: service-resolver',
        'Name: api',
        'DefaultSubset: v1',
        'Subsets:',
        '  v1:',
        '    Filter: Service.Meta.version == v1',
        '  v2:',
        '    Filter: Service.Meta.version == v2',
        '    OnlyPassing: true',
        'Failover:',
        "  '*':",
        '    Targets:',
        '      - ServiceSubset: v2',
        'ConnectTimeout: 2s',
        '',
      ].join('\n'),
    );
    expect(await cli(['config', 'write', resolver])).toMatchObject({
      code: 0,
      stdout: 'Config entry written: service-resolver/api',
    });
    const read = JSON.parse((await cli(['config', 'read', 'service-resolver', 'api'])).stdout);
    expect(read).toEqual({
      Kind: 'service-resolver',
      Name: 'api',
      DefaultSubset: 'v1',
      Subsets: {
        v1: { Filter: 'Service.Meta.version == v1' },
        v2: { Filter: 'Service.Meta.version == v2', OnlyPassing: true },
      },
      Failover: { '*': { Targets: [{ ServiceSubset: 'v2' }] } },
      ConnectTimeout: '2s',
      CreateIndex: expect.any(Number),
      ModifyIndex: expect.any(Number),
    });
    // What read prints is accepted back as it is.
    expect((await cli(['config', 'write', file('api-read.json', JSON.stringify(read))])).code).toBe(
      0,
    );
    expect(
      await cli([
        'config',
        'write',
        file(
          'peer.json',
          JSON.stringify({
            Kind: 'service-resolver',
            Name: 'web',
            Failover: { '*': { Targets: [{ Peer: 'cluster-z' }] } },
          }),
        ),
      ]),
    ).toMatchObject({
      code: 1,
      stderr:
        'isthmus: Failover.*.Targets[0].Peer: "cluster-z" is not a peering of this cluster; establish it first (there are none) (HTTP 400)\n',
    });
    const redirect = (name: string, to: string) =>
      file(
        `${name}.json`,
        JSON.stringify({ Kind: 'service-resolver', Name: name, Redirect: { Service: to } }),
      );
    expect((await cli(['config', 'write', redirect('old', 'api')])).code).toBe(0);
    expect(await cli(['config', 'write', redirect('api', 'old')])).toMatchObject({
      code: 1,
      stderr:
        'isthmus: Redirect: redirects in a loop (api → old → api); break the cycle (HTTP 400)\n',
    });
    const list = await cli(['config', 'list', 'service-resolver']);
    expect(list.stdout.split('\n').slice(1)).toEqual([
      expect.stringMatching(/^api +\d+$/),
      expect.stringMatching(/^old +\d+$/),
    ]);
    for (const name of ['old', 'api'])
      expect((await cli(['config', 'delete', 'service-resolver', name])).code).toBe(0);
  });
});
