/**
 * The two-cluster docker-compose demo (issue 6), checked without a Docker engine or Envoy:
 * `docker-compose config` accepts the file; its structure holds together (files, services,
 * networks, volumes, fixed addresses, published ports, image tags); Prometheus' config is valid and
 * scrapes exactly the isthmus servers; and the demo's own setup and peering scripts run for real,
 * with the environment compose gives them, against two real `isthmus server` processes. Every
 * bootstrap an Envoy container reads is then validated, and a fake Envoy per container connects
 * with that bootstrap's node ID and token to see the config the real one would get: listeners on
 * addresses its container has, endpoints its container can reach.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  writeFileSync,
} from 'node:fs';
import { dirname, isAbsolute, join, posix, resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { Bootstrap } from '../../src/gen/envoy/config/bootstrap/v3/bootstrap.js';
import {
  exportedClusterName,
  peeredServiceSni,
  peeredUpstreamClusterName,
} from '../../src/mesh/names.js';
import { TypeUrl } from '../../src/xds/types.js';
import { EnvoyLike } from '../helpers/envoy-like.js';
import { adsClient } from '../helpers/fake-envoy.js';
import { validateJson } from '../helpers/pgv.js';
import {
  type ServerProcess,
  cleanupProcesses,
  cliCommand,
  startServerProcess,
  tempDir,
} from '../helpers/process.js';
import { skipWithout } from '../helpers/tools.js';
import { withDeadline } from '../helpers/wait.js';

type Json = any; // compose YAML, bootstraps and expanded Envoy JSON, walked as their readers do

const repoRoot = resolve(import.meta.dirname, '../..');
const composeText = readFileSync(join(repoRoot, 'docker-compose.yml'), 'utf8');
const compose: Json = parseYaml(composeText);
const services: Record<string, Json> = compose.services;
const serviceNames = Object.keys(services);

// ── reading the compose file the way compose and the containers do ──────────────────────────────

const asList = (v: unknown): string[] =>
  v === undefined ? [] : Array.isArray(v) ? v.map(String) : [String(v)];
const dependsOn = (svc: Json): Record<string, string> =>
  Array.isArray(svc.depends_on)
    ? Object.fromEntries(svc.depends_on.map((d: string) => [d, 'service_started']))
    : Object.fromEntries(
        Object.entries(svc.depends_on ?? {}).map(([k, v]) => [k, (v as Json).condition]),
      );

/** `${VAR:-default}` as compose interpolates it with VAR unset. */
const interpolate = (value: string): string => value.replace(/\$\{[A-Z_]+:-([^}]*)\}/g, '$1');

function environment(svc: Json): Record<string, string> {
  const raw = svc.environment ?? {};
  const pairs: [string, string][] = Array.isArray(raw)
    ? raw.map((e: string) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)])
    : Object.entries(raw).map(([k, v]) => [k, String(v)]);
  return Object.fromEntries(pairs.map(([k, v]) => [k, interpolate(v)]));
}

interface Mount {
  readonly source: string;
  readonly target: string;
  readonly bind: boolean;
  readonly readOnly: boolean;
}

function mounts(svc: Json): Mount[] {
  return asList(svc.volumes).map((v) => {
    const [source, target, mode] = v.split(':') as [string, string, string | undefined];
    return {
      source,
      target,
      bind: source.startsWith('.') || isAbsolute(source),
      readOnly: mode === 'ro',
    };
  });
}

/** The host file behind a container path of a bind mount, or undefined. */
function hostPath(svc: Json, containerPath: string): string | undefined {
  for (const m of mounts(svc)) {
    if (!m.bind || !(containerPath === m.target || containerPath.startsWith(`${m.target}/`)))
      continue;
    return join(repoRoot, m.source, posix.relative(m.target, containerPath));
  }
  return undefined;
}

/** The named volume mounted at a container directory. */
const volumeAt = (svc: Json, dir: string): Mount | undefined =>
  mounts(svc).find((m) => !m.bind && m.target === dir);

/** Networks and fixed IPv4 addresses of a service; `network_mode: service:X` shares X's. */
function networksOf(name: string): Map<string, string | undefined> {
  const svc = services[name];
  if (typeof svc.network_mode === 'string' && svc.network_mode.startsWith('service:'))
    return networksOf(svc.network_mode.slice('service:'.length));
  const nets = svc.networks ?? [];
  if (Array.isArray(nets)) return new Map(nets.map((n: string) => [n, undefined]));
  return new Map(Object.entries(nets).map(([n, v]) => [n, (v as Json)?.ipv4_address]));
}

const ipOf = (name: string, network: string): string =>
  networksOf(name).get(network) ?? expect.fail(`${name} has no fixed address on ${network}`);

const ipNumber = (ip: string): number =>
  ip.split('.').reduce((n, part) => n * 256 + Number(part), 0);
function inCidr(ip: string, cidr: string): boolean {
  const [base, bits] = cidr.split('/') as [string, string];
  const size = 2 ** (32 - Number(bits));
  return Math.floor(ipNumber(ip) / size) === Math.floor(ipNumber(base) / size);
}
const ipamOf = (network: string): { subnet: string; ip_range?: string } =>
  compose.networks[network].ipam.config[0];

/**
 * Whether a container of `from` can open a connection to `ip`: it is on the network of that subnet.
 */
const canReach = (from: string, ip: string): boolean =>
  [...networksOf(from).keys()].some((n) => inCidr(ip, ipamOf(n).subnet));

/** `--flag=value` or `--flag value` in an argument list. */
function flagValue(args: readonly string[], flag: string): string | undefined {
  const i = args.findIndex((a) => a === flag || a.startsWith(`${flag}=`));
  if (i < 0) return undefined;
  return args[i] === flag ? args[i + 1] : args[i]!.slice(flag.length + 1);
}

const isthmusServers = serviceNames.filter((n) => asList(services[n].command)[0] === 'server');
const envoys = serviceNames.filter((n) =>
  String(services[n].image).startsWith('envoyproxy/envoy:'),
);
const setups = serviceNames.filter((n) =>
  asList(services[n].entrypoint).some((a) => a.endsWith('/setup.sh')),
);
const peerJobs = serviceNames.filter((n) =>
  asList(services[n].entrypoint).some((a) => a.endsWith('/peer.sh')),
);
const port = (hostPortText: string): number =>
  Number(hostPortText.slice(hostPortText.lastIndexOf(':') + 1));
const serverFlag = (name: string, flag: string): string =>
  flagValue(asList(services[name].command), flag) ?? expect.fail(`${name} has no ${flag}`);

interface EnvoyContainer {
  readonly service: string;
  readonly bootstrapPath: string;
  readonly proxyId: string;
  readonly setup: string;
  readonly server: string;
}

/**
 * Each Envoy container, the bootstrap it reads, and the setup job that writes it into the same
 * volume.
 */
function envoyContainer(name: string): EnvoyContainer {
  const args = asList(services[name].command);
  const bootstrapPath = flagValue(args, '-c') ?? expect.fail(`${name}: no -c`);
  const volume =
    volumeAt(services[name], dirname(bootstrapPath)) ??
    expect.fail(`${name}: ${dirname(bootstrapPath)} is not a named volume`);
  const proxyId = posix.basename(bootstrapPath, '.json');
  const setup = setups.find((s) => {
    const env = environment(services[s]);
    const written = volumeAt(services[s], env.BOOTSTRAP_DIR ?? '/bootstrap');
    const ids = `${env.SIDECARS ?? ''} ${env.GATEWAYS ?? ''}`.split(/\s+/);
    return written?.source === volume.source && !written.readOnly && ids.includes(proxyId);
  });
  if (!setup)
    return expect.fail(
      `${name} reads ${bootstrapPath} (volume ${volume.source}) that no setup job writes`,
    );
  const server = environment(services[setup]).ISTHMUS_HTTP_ADDR!.split(':')[0]!;
  return { service: name, bootstrapPath, proxyId, setup, server };
}

describe.skipIf(skipWithout('docker-compose', 'promtool'))(
  'docker-compose two-cluster demo',
  () => {
    describe('static validation', () => {
      const cleanEnv = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '' };

      it('docker-compose accepts the file (config -q, no engine needed), and it is a real check: a v2-only key is refused', () => {
        const ok = spawnSync('docker-compose', ['-f', 'docker-compose.yml', 'config', '-q'], {
          cwd: repoRoot,
          env: cleanEnv,
          encoding: 'utf8',
        });
        expect(ok.stderr).toBe('');
        expect(ok.status).toBe(0);
        const bad = spawnSync('docker-compose', ['-f', '-', 'config', '-q'], {
          cwd: repoRoot,
          env: cleanEnv,
          encoding: 'utf8',
          input: `name: isthmus-demo\n${composeText}`,
        });
        expect(bad.status).not.toBe(0);
        expect(bad.stderr).toContain("'name'");
      });

      it('every bind-mounted file, build context and script argument exists', () => {
        for (const [name, svc] of Object.entries(services)) {
          for (const m of mounts(svc).filter((x) => x.bind))
            expect(existsSync(join(repoRoot, m.source)), `${name}: ${m.source}`).toBe(true);
          if (svc.build !== undefined)
            expect(
              existsSync(join(repoRoot, String(svc.build), 'Dockerfile')),
              `${name}: Dockerfile`,
            ).toBe(true);
          const paths = [
            ...asList(svc.entrypoint),
            ...asList(svc.command),
            ...Object.values(environment(svc)),
          ].filter((a) => a.startsWith('/'));
          for (const p of paths) {
            const host = hostPath(svc, p);
            if (host !== undefined) expect(existsSync(host), `${name}: ${p} → ${host}`).toBe(true);
          }
        }
        expect(setups.length).toBe(2);
        expect(peerJobs.length).toBe(1);
      });

      it('every depends_on and network_mode target is a service; Envoys start after their setup job completed', () => {
        for (const [name, svc] of Object.entries(services)) {
          for (const target of Object.keys(dependsOn(svc)))
            expect(serviceNames, `${name} depends on ${target}`).toContain(target);
          if (typeof svc.network_mode === 'string')
            expect(serviceNames).toContain(svc.network_mode.replace(/^service:/, ''));
        }
        for (const e of envoys) {
          const { setup } = envoyContainer(e);
          expect(dependsOn(services[e])[setup], `${e} waits for ${setup}`).toBe(
            'service_completed_successfully',
          );
        }
        for (const job of [...setups, ...peerJobs]) {
          for (const server of Object.keys(dependsOn(services[job])))
            expect(dependsOn(services[job])[server]).toBe('service_healthy');
        }
      });

      it('every network and named volume used is declared, and every declared one is used', () => {
        const usedNetworks = new Set(
          serviceNames.flatMap((n) => (services[n].network_mode ? [] : [...networksOf(n).keys()])),
        );
        const usedVolumes = new Set(
          serviceNames.flatMap((n) =>
            mounts(services[n])
              .filter((m) => !m.bind)
              .map((m) => m.source),
          ),
        );
        expect([...usedNetworks].sort()).toEqual(Object.keys(compose.networks).sort());
        expect([...usedVolumes].sort()).toEqual(Object.keys(compose.volumes).sort());
      });

      it('fixed addresses are unique, inside their subnet and outside the range handed out to the other containers', () => {
        const seen = new Map<string, string>();
        for (const name of serviceNames) {
          if (services[name].network_mode) continue;
          for (const [network, ip] of networksOf(name)) {
            if (ip === undefined) continue;
            const { subnet, ip_range: range } = ipamOf(network);
            expect(inCidr(ip, subnet), `${name} ${ip} in ${subnet}`).toBe(true);
            if (range) expect(inCidr(ip, range), `${name} ${ip} outside ${range}`).toBe(false);
            expect(seen.get(ip), `${ip} of ${name}`).toBeUndefined();
            seen.set(ip, name);
          }
        }
        expect(seen.size).toBeGreaterThanOrEqual(envoys.length);
      });

      it('publishes ports on 127.0.0.1 only, and pins every image by an explicit tag', () => {
        for (const [name, svc] of Object.entries(services)) {
          for (const p of asList(svc.ports))
            expect(p, `${name} publishes ${p}`).toMatch(/^127\.0\.0\.1:\d+:\d+$/);
          expect(String(svc.image), `${name} image`).toMatch(/^[a-z0-9./-]+:[A-Za-z0-9._-]+$/);
          expect(String(svc.image)).not.toMatch(/:latest$/);
        }
        const from = /^FROM\s+(\S+)/m.exec(readFileSync(join(repoRoot, 'Dockerfile'), 'utf8'))?.[1];
        expect(from).toMatch(/^node:20[.\d]*-bookworm-slim$/);
      });

      it('the image build context holds what the Dockerfile copies, and leaves out local builds of what npm ci makes', () => {
        const dockerfile = readFileSync(join(repoRoot, 'Dockerfile'), 'utf8');
        const ignored = readFileSync(join(repoRoot, '.dockerignore'), 'utf8')
          .split('\n')
          .map((l) => l.trim())
          .filter((l) => l !== '' && !l.startsWith('#'));
        // What comes from the context: not what `COPY --from=STAGE` takes from a build stage.
        const copied = [...dockerfile.matchAll(/^COPY\s+(?!--from=)(.+)$/gm)].flatMap((m) =>
          m[1]!.split(/\s+/).slice(0, -1),
        );
        expect(copied.length).toBeGreaterThan(0);
        for (const source of copied) {
          expect(existsSync(join(repoRoot, source)), source).toBe(true);
          expect(
            ignored.filter((i) => source === i || source.startsWith(`${i}/`)),
            `${source} is excluded by .dockerignore`,
          ).toEqual([]);
        }
        expect(ignored).toEqual(
          expect.arrayContaining(['node_modules', 'src/gen', 'dist', 'data']),
        );
      });

      it('servers listen on all addresses of their containers, need the HTTP token there, authenticate xDS streams by proxy token, and advertise a peering address their peer can resolve', () => {
        for (const s of isthmusServers) {
          for (const flag of ['--http-addr', '--xds-addr', '--peering-addr'])
            expect(serverFlag(s, flag), `${s} ${flag}`).toMatch(/^0\.0\.0\.0:\d+$/);
          expect(environment(services[s]).ISTHMUS_HTTP_TOKEN, `${s} HTTP token`).toMatch(
            /^[\x21-\x7e]{16,256}$/,
          );
          expect(flagValue(asList(services[s].command), '--xds-auth') ?? 'token').toBe('token');
          expect(
            asList(services[s].command).filter((a) => a.startsWith('--insecure-http')),
          ).toEqual([]);
          expect(serverFlag(s, '--advertise-addr')).toBe(
            `${s}:${port(serverFlag(s, '--peering-addr'))}`,
          );
          const others = isthmusServers.filter((o) => o !== s);
          for (const o of others)
            expect(
              [...networksOf(o).keys()].some((n) => networksOf(s).has(n)),
              `${o} reaches ${s}`,
            ).toBe(true);
        }
      });

      it('promtool accepts deploy/prometheus.yml, which scrapes exactly the isthmus servers on their HTTP ports', () => {
        const prometheus = services.prometheus;
        const file =
          hostPath(prometheus, '/etc/prometheus/prometheus.yml') ??
          expect.fail('prometheus.yml is not mounted');
        expect(file).toBe(join(repoRoot, 'deploy/prometheus.yml'));
        const check = spawnSync('promtool', ['check', 'config', file], { encoding: 'utf8' });
        expect(check.status, check.stdout + check.stderr).toBe(0);
        const config: Json = parseYaml(readFileSync(file, 'utf8'));
        const targets = config.scrape_configs
          .flatMap((s: Json) => s.static_configs.flatMap((c: Json) => c.targets))
          .sort();
        expect(targets).toEqual(
          isthmusServers.map((s) => `${s}:${port(serverFlag(s, '--http-addr'))}`).sort(),
        );
        for (const s of isthmusServers)
          expect(
            [...networksOf('prometheus').keys()].some((n) => networksOf(s).has(n)),
            `prometheus reaches ${s}`,
          ).toBe(true);
      });
    });

    describe('the setup and peering jobs against two real servers', () => {
      const servers = new Map<string, ServerProcess>();
      const bootstrapDirs = new Map<string, string>();
      const probes = new Map<string, EnvoyLike>();
      const clients: grpc.Client[] = [];
      let shimDir: string;

      const api = async <T = Json>(server: string, path: string): Promise<T> => {
        const token = environment(services[server]).ISTHMUS_HTTP_TOKEN;
        const res = await fetch(servers.get(server)!.url(path), {
          headers: { authorization: `Bearer ${token}` },
        });
        expect(res.status, `GET ${path} on ${server}`).toBe(200);
        return (await res.json()) as T;
      };

      /**
       * The server's compose flags and environment (its --http-token among them), but on loopback
       * port 0 with a temporary data dir, and advertising the bound peering address.
       */
      function localServerArgs(name: string): string[] {
        const replaced = [
          '--data-dir',
          '--http-addr',
          '--xds-addr',
          '--peering-addr',
          '--advertise-addr',
        ];
        const args = asList(services[name].command).slice(1);
        expect(
          args.every((a) => a.startsWith('--') && a.includes('=')),
          `${name}: write flags as --flag=value`,
        ).toBe(true);
        return args.filter((a) => !replaced.includes(a.slice(0, a.indexOf('='))));
      }

      /**
       * Runs a job's entrypoint + command on this machine with the environment compose gives it
       * (plus `extra`).
       */
      async function runJob(
        name: string,
        extra: Record<string, string> = {},
      ): Promise<{ code: number | null; output: string }> {
        const svc = services[name];
        const args = [...asList(svc.entrypoint), ...asList(svc.command)].map(
          (a) => hostPath(svc, a) ?? a,
        );
        const env: Record<string, string> = {
          PATH: `${shimDir}:${process.env.PATH ?? ''}`,
          HOME: process.env.HOME ?? '',
        };
        for (const [k, v] of Object.entries(environment(svc))) {
          // A server's HTTP API by compose service name → the test server's loopback port. The xDS
          // address stays as compose sets it: the bootstraps must name what Envoy dials in compose.
          const server = isthmusServers.find(
            (s) => v === `${s}:${port(serverFlag(s, '--http-addr'))}`,
          );
          env[k] = server ? `127.0.0.1:${servers.get(server)!.httpPort}` : (hostPath(svc, v) ?? v);
        }
        const dir = env.BOOTSTRAP_DIR;
        if (dir !== undefined) env.BOOTSTRAP_DIR = bootstrapDirs.get(volumeAt(svc, dir)!.source)!;
        Object.assign(env, extra);
        const child: ChildProcess = spawn(args[0]!, args.slice(1), {
          cwd: repoRoot,
          env,
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let output = '';
        child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
        child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
        const code = await withDeadline(
          new Promise<number | null>((done) => child.on('close', done)),
          { timeoutMs: 60_000, what: `the ${name} job` },
        ).catch((err: unknown) => {
          child.kill('SIGKILL');
          throw err;
        });
        return { code, output };
      }

      const readBootstrap = (e: EnvoyContainer): Json => {
        const volume = volumeAt(services[e.service], dirname(e.bootstrapPath))!.source;
        return JSON.parse(
          readFileSync(join(bootstrapDirs.get(volume)!, posix.basename(e.bootstrapPath)), 'utf8'),
        );
      };

      beforeAll(async () => {
        const root = tempDir('isthmus-compose-');
        shimDir = join(root, 'bin');
        mkdirSync(shimDir);
        writeFileSync(
          join(shimDir, 'isthmus'),
          `#!/bin/sh\nexec ${cliCommand.map((a) => `'${a}'`).join(' ')} "$@"\n`,
        );
        chmodSync(join(shimDir, 'isthmus'), 0o755);
        // The named volumes the jobs write bootstraps into, as directories here.
        for (const job of setups) {
          const volume = volumeAt(
            services[job],
            environment(services[job]).BOOTSTRAP_DIR ?? '/bootstrap',
          )!.source;
          bootstrapDirs.set(volume, join(root, volume));
          mkdirSync(join(root, volume));
        }
        const started = await Promise.all(
          isthmusServers.map((s) =>
            startServerProcess([...localServerArgs(s), '--coalesce-ms', '20'], {
              env: environment(services[s]),
            }),
          ),
        );
        isthmusServers.forEach((s, i) => servers.set(s, started[i]!));
        // As compose runs them: the setup jobs and the peering job at once, each once its server is
        // up.
        const jobs = [...setups, ...peerJobs];
        const results = await Promise.all(jobs.map((j) => runJob(j)));
        results.forEach((r, i) =>
          expect(r.code, `${jobs[i]} exited ${r.code}:\n${r.output}`).toBe(0),
        );
      }, 90_000);

      afterAll(async () => {
        for (const p of probes.values()) p.close();
        for (const c of clients) c.close();
        await cleanupProcesses();
      });

      it('writes every bootstrap an Envoy container reads, and nothing else (no leftover temporary files)', () => {
        const expected = envoys.map(
          (e) =>
            `${volumeAt(services[e], dirname(envoyContainer(e).bootstrapPath))!.source}/${envoyContainer(e).proxyId}.json`,
        );
        const written = [...bootstrapDirs].flatMap(([v, dir]) =>
          readdirSync(dir).map((f) => `${v}/${f}`),
        );
        expect(written.sort()).toEqual(expected.sort());
      });

      it.each(envoys)(
        "%s: its bootstrap is a valid Envoy Bootstrap for a proxy registered in its cluster, dialing that cluster's server by service name",
        async (name) => {
          const e = envoyContainer(name);
          const json = readBootstrap(e);
          expect(validateJson('envoy.config.bootstrap.v3.Bootstrap', json)).toEqual([]);
          const bootstrap = Bootstrap.fromJSON(json);
          expect(bootstrap.node?.id).toBe(e.proxyId);
          const instances = await registeredInstances(e.server);
          const instance =
            instances.find((i) => i.ServiceID === e.proxyId) ??
            expect.fail(`${e.proxyId} is not registered on ${e.server}`);
          expect(json.node.metadata.isthmus_kind).toBe(instance.ServiceKind);
          expect(json.node.metadata.isthmus_datacenter).toBe(serverFlag(e.server, '--datacenter'));
          const [xds] = json.static_resources.clusters;
          expect(xds.type).toBe('STRICT_DNS');
          expect(
            xds.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address,
          ).toEqual({ address: e.server, port_value: port(serverFlag(e.server, '--xds-addr')) });
          expect(
            [...networksOf(name).keys()].some((n) => networksOf(e.server).has(n)),
            `${name} shares a network with ${e.server}`,
          ).toBe(true);
        },
      );

      /** Every catalog instance of a server: ID, kind, address. */
      async function registeredInstances(server: string): Promise<Json[]> {
        const names = Object.keys(
          await api<Record<string, string[]>>(server, '/v1/catalog/services'),
        );
        return (
          await Promise.all(
            names.map((n) => api<Json[]>(server, `/v1/catalog/service/${encodeURIComponent(n)}`)),
          )
        ).flat();
      }

      /** A fake Envoy with exactly the bootstrap's node ID and token, on its cluster's xDS port. */
      function probe(name: string): EnvoyLike {
        const existing = probes.get(name);
        if (existing) return existing;
        const e = envoyContainer(name);
        const bootstrap = readBootstrap(e);
        const grpcService = bootstrap.dynamic_resources.ads_config.grpc_services[0];
        const md = new grpc.Metadata();
        for (const { key, value } of grpcService.initial_metadata ?? []) md.set(key, value);
        // The bootstrap's own TLS: its roots and server name verify the server.
        const tls = bootstrap.static_resources.clusters[0].transport_socket.typed_config;
        const client = adsClient(`127.0.0.1:${servers.get(e.server)!.xdsPort}`, {
          caPem: tls.common_tls_context.validation_context.trusted_ca.inline_string,
          serverName: tls.sni,
        });
        clients.push(client);
        const envoy = new EnvoyLike(client, e.proxyId, md);
        probes.set(name, envoy);
        return envoy;
      }

      const json = (e: EnvoyLike, type: string, name: string): Json =>
        JSON.parse(e.json(type, name) || 'null');
      const socket = (address: Json): string =>
        `${address.socketAddress.address}:${address.socketAddress.portValue}`;
      const endpointsOf = (e: EnvoyLike, cluster: string): string[] =>
        (json(e, TypeUrl.endpoint, cluster)?.endpoints ?? []).flatMap((l: Json) =>
          l.lbEndpoints.map((lb: Json) => socket(lb.endpoint.address)),
        );
      const listenerAddresses = (e: EnvoyLike): string[] =>
        e.names(TypeUrl.listener).map((n) => socket(json(e, TypeUrl.listener, n).address));
      const tdOf = async (server: string): Promise<string> =>
        (await api<{ TrustDomain: string }>(server, '/v1/connect/ca/roots')).TrustDomain;

      it('both peerings are ACTIVE, and cluster A exports api to cluster B', async () => {
        const [a, b] = isthmusServers as [string, string];
        expect((await api(a, '/v1/peering/cluster-b')).State).toBe('ACTIVE');
        expect((await api(b, '/v1/peering/cluster-a')).State).toBe('ACTIVE');
        expect(await api(a, '/v1/exported-services')).toEqual([
          expect.objectContaining({
            Service: 'api',
            Consumers: expect.objectContaining({ Peers: ['cluster-b'] }),
          }),
        ]);
      });

      it("api's sidecar listens on its container's address and passes traffic to the app's listen address", async () => {
        const sidecar = probe('api-sidecar');
        await sidecar.until(
          (e) =>
            e.names(TypeUrl.listener).some((n) => n.startsWith('public_listener:')) &&
            e.get(TypeUrl.cluster, 'local_app') !== undefined,
          "api's public listener",
          15_000,
        );
        expect(listenerAddresses(sidecar)).toEqual([`${ipOf('api-sidecar', 'net-a')}:21000`]);
        const appListen = flagValue(asList(services.api.command), '-listen');
        expect(services.api.network_mode).toBe('service:api-sidecar');
        expect(localAppAddress(sidecar)).toEqual([appListen]);
      });

      /** local_app is a static cluster: its address is in the cluster's own load assignment. */
      function localAppAddress(e: EnvoyLike): string[] {
        const cluster = json(e, TypeUrl.cluster, 'local_app');
        return cluster.loadAssignment.endpoints.flatMap((l: Json) =>
          l.lbEndpoints.map((lb: Json) => socket(lb.endpoint.address)),
        );
      }

      /** The mesh gateway containers: the Envoys whose proxy ID a setup job lists in GATEWAYS. */
      const gatewayIds = setups.flatMap((s) =>
        (environment(services[s]).GATEWAYS ?? '').split(/\s+/).filter((id) => id !== ''),
      );
      const gateways = envoys.filter((e) => gatewayIds.includes(envoyContainer(e).proxyId));

      it('there is a mesh gateway container per cluster', () => {
        expect(gateways.map((g) => envoyContainer(g).server).sort()).toEqual(
          [...isthmusServers].sort(),
        );
      });

      it.each(gateways)(
        '%s is registered with its cluster-network (LAN) and its wan address, binds both, and listens on each: addresses its container has',
        async (name) => {
          const e = envoyContainer(name);
          const registered =
            (await registeredInstances(e.server)).find((i) => i.ServiceID === e.proxyId) ??
            expect.fail(`${e.proxyId} is not registered`);
          const [lanNet, ...others] = [...networksOf(name).keys()].filter((n) => n !== 'wan');
          expect(others, `${name} is on one cluster network besides wan`).toEqual([]);
          const lan = `${ipOf(name, lanNet!)}:${registered.ServicePort}`;
          const wan = `${ipOf(name, 'wan')}:${registered.ServiceTaggedAddresses?.wan?.Port}`;
          expect(`${registered.ServiceAddress}:${registered.ServicePort}`).toBe(lan);
          expect(registered.ServiceTaggedAddresses).toEqual({
            lan: { Address: ipOf(name, lanNet!), Port: registered.ServicePort },
            wan: { Address: ipOf(name, 'wan'), Port: 8443 },
          });
          const gateway = probe(name);
          await gateway.until(
            (g) => g.names(TypeUrl.listener).length >= 2,
            `${name}'s LAN and WAN listeners`,
            15_000,
          );
          await gateway.settle();
          const listening = listenerAddresses(gateway);
          const own = [...networksOf(name).values()];
          for (const address of listening)
            expect(own, `${name} listens on ${address}`).toContain(
              address.slice(0, address.lastIndexOf(':')),
            );
          expect(listening.sort()).toEqual([lan, wan].sort());
          expect(gateway.names(TypeUrl.listener).sort()).toEqual([`default:${lan}`, `wan:${wan}`]);
          // The default listener serves both sides, the WAN one only the WAN side: each WAN chain
          // is one of the default's (docs/architecture.md §5 "What a gateway routes").
          const chainsOf = (n: string) =>
            (json(gateway, TypeUrl.listener, n).filterChains ?? []).map((c: unknown) =>
              JSON.stringify(c),
            );
          const byDefault = new Set(chainsOf(`default:${lan}`));
          for (const chain of chainsOf(`wan:${wan}`)) expect(byDefault).toContain(chain);
        },
      );

      it("A's gateway sends the exported api to api's sidecar, which it can reach", async () => {
        const gateway = probe('gateway-a');
        const tdA = await tdOf(isthmusServers[0]!);
        const exported = exportedClusterName(tdA, serverFlag(isthmusServers[0]!, '--datacenter'), {
          name: 'api',
        });
        await gateway.until(
          (e) => e.names(TypeUrl.listener).length > 0 && endpointsOf(e, exported).length > 0,
          "A's gateway exported api",
          15_000,
        );
        const [sidecar] = endpointsOf(gateway, exported);
        expect(sidecar).toBe(`${ipOf('api-sidecar', 'net-a')}:21000`);
        expect(canReach('gateway-a', ipOf('api-sidecar', 'net-a'))).toBe(true);
      });

      it("web's upstream listener is where the client calls, and its endpoint is B's gateway on B's network (mesh gateway mode local)", async () => {
        const sidecar = probe('web-sidecar');
        const tdA = await tdOf(isthmusServers[0]!);
        const cluster = peeredUpstreamClusterName(tdA, 'cluster-a', { name: 'api' });
        await sidecar.until(
          (e) =>
            endpointsOf(e, cluster).length > 0 &&
            e.names(TypeUrl.listener).some((n) => n.startsWith('api?peer=cluster-a:')),
          "web's peered api upstream",
          15_000,
        );
        const url = /http:\/\/([\d.]+:\d+)\//.exec(asList(services.web.command).join(' '))?.[1];
        expect(services.web.network_mode).toBe('service:web-sidecar');
        expect(listenerAddresses(sidecar).sort()).toEqual(
          [url, `${ipOf('web-sidecar', 'net-b')}:21000`].sort(),
        );
        const gatewayB = `${ipOf('gateway-b', 'net-b')}:8443`;
        expect(endpointsOf(sidecar, cluster)).toEqual([gatewayB]);
        expect(canReach('web-sidecar', ipOf('gateway-b', 'net-b'))).toBe(true);
      });

      it("B's gateway listens where web's sidecar dials it and sends api's peered SNI to A's gateway WAN address, where A's gateway listens, over the wan network", async () => {
        const gateway = probe('gateway-b');
        const tdA = await tdOf(isthmusServers[0]!);
        const sni = peeredServiceSni(tdA, 'cluster-b', { name: 'api' });
        await gateway.until(
          (e) => e.names(TypeUrl.listener).length > 0 && endpointsOf(e, sni).length > 0,
          "B's gateway cluster for the imported api",
          15_000,
        );
        expect(listenerAddresses(gateway)).toContain(`${ipOf('gateway-b', 'net-b')}:8443`);
        const wanA = `${ipOf('gateway-a', 'wan')}:8443`;
        expect(endpointsOf(gateway, sni)).toEqual([wanA]);
        expect(canReach('gateway-b', ipOf('gateway-a', 'wan'))).toBe(true);
        const gatewayA = probe('gateway-a');
        await gatewayA.until(
          (e) => e.names(TypeUrl.listener).length >= 2,
          "A's gateway listeners",
          15_000,
        );
        expect(listenerAddresses(gatewayA)).toContain(wanA);
      });

      it("the reverse direction has what it needs: B's gateway is registered with its WAN address (what B gives its peers), listens there, and A's gateway can reach it", async () => {
        const [, b] = isthmusServers as [string, string];
        const registered = (await registeredInstances(b)).find(
          (i) => i.ServiceID === envoyContainer('gateway-b').proxyId,
        );
        const wanB = `${ipOf('gateway-b', 'wan')}:8443`;
        expect(
          `${registered?.ServiceTaggedAddresses?.wan?.Address}:${registered?.ServiceTaggedAddresses?.wan?.Port}`,
        ).toBe(wanB);
        const gateway = probe('gateway-b');
        await gateway.until(
          (e) => e.names(TypeUrl.listener).length >= 2,
          "B's gateway listeners",
          15_000,
        );
        expect(listenerAddresses(gateway)).toContain(wanB);
        expect(canReach('gateway-a', ipOf('gateway-b', 'wan'))).toBe(true);
      });

      it('a setup job fails with the reason, and writes no bootstrap, when its server is not there or refuses its token', async () => {
        const job = setups[0]!;
        const dir = tempDir('isthmus-compose-failed-');
        const absent = await runJob(job, {
          ISTHMUS_HTTP_ADDR: '127.0.0.1:1',
          WAIT_SECONDS: '1',
          BOOTSTRAP_DIR: dir,
        });
        expect(absent.code).not.toBe(0);
        expect(absent.output).toContain('no ready isthmus HTTP API at 127.0.0.1:1');
        const refused = await runJob(job, {
          ISTHMUS_HTTP_TOKEN: 'not-the-demo-token-0123456789',
          BOOTSTRAP_DIR: dir,
        });
        expect(refused.code).not.toBe(0);
        expect(refused.output).toMatch(
          /^isthmus: Permission denied: the HTTP API token is not valid/m,
        );
        expect(readdirSync(dir)).toEqual([]);
      });

      it('running the peering job again (docker-compose up, once more) leaves the ACTIVE peering alone', async () => {
        const [a, b] = isthmusServers as [string, string];
        const before = await Promise.all([
          api(a, '/v1/peering/cluster-b'),
          api(b, '/v1/peering/cluster-a'),
        ]);
        const again = await runJob(peerJobs[0]!);
        expect(again.code, again.output).toBe(0);
        expect(again.output).toContain('cluster B already peers with cluster-a (state ACTIVE)');
        const after = await Promise.all([
          api(a, '/v1/peering/cluster-b'),
          api(b, '/v1/peering/cluster-a'),
        ]);
        expect(after.map((p) => [p.ID, p.State])).toEqual(before.map((p) => [p.ID, 'ACTIVE']));
      });
    });
  },
);
