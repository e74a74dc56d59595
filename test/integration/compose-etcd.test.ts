/**
 * The compose variant with three isthmus servers per cluster on etcd (docker-compose.etcd.yml over
 * docker-compose.yml, issue 15), checked without a Docker engine: `docker-compose config` merges
 * the two files, and the merged services hold together: three servers per cluster on their
 * cluster's etcd, each advertising its own peering address; the Envoys' xDS name resolves to every
 * server of their cluster and to nothing else; Prometheus scrapes every server.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { skipWithout } from '../helpers/tools.js';

type Json = any; // the merged compose document, walked as compose reads it

const repoRoot = resolve(import.meta.dirname, '../..');
const files = ['-f', 'docker-compose.yml', '-f', 'docker-compose.etcd.yml'];

function composeConfig(): { status: number | null; stdout: string; stderr: string } {
  const run = spawnSync('docker-compose', [...files, 'config'], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '' },
    encoding: 'utf8',
  });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

const flag = (svc: Json, name: string): string | undefined =>
  (svc.command as string[]).find((a) => a.startsWith(`${name}=`))?.slice(name.length + 1);
const hostOf = (hostPort: string): string => hostPort.slice(0, hostPort.lastIndexOf(':'));
const portOf = (hostPort: string): string => hostPort.slice(hostPort.lastIndexOf(':') + 1);
const networks = (svc: Json): Record<string, Json> => svc.networks ?? {};

describe.skipIf(skipWithout('docker-compose', 'promtool'))(
  'docker-compose variant: three servers per cluster on etcd',
  () => {
    const merged = composeConfig();
    const services: Record<string, Json> =
      merged.status === 0 ? parseYaml(merged.stdout).services : {};
    const servers = Object.entries(services).filter(([, s]) => s.command?.[0] === 'server');
    const clusters = [...new Set(servers.map(([, s]) => flag(s, '--datacenter')!))].sort();
    const serversOf = (dc: string): [string, Json][] =>
      servers.filter(([, s]) => flag(s, '--datacenter') === dc);

    it('docker-compose merges the two files (config, no engine needed)', () => {
      expect(merged.stderr).toBe('');
      expect(merged.status).toBe(0);
      expect(clusters).toEqual(['dc-a', 'dc-b']);
    });

    it.each(['dc-a', 'dc-b'])(
      '%s: three servers on the same etcd, which they wait for, each advertising its own peering address',
      (dc) => {
        const own = serversOf(dc);
        expect(own).toHaveLength(3);
        const endpoints = new Set(own.map(([, s]) => flag(s, '--etcd-endpoints')));
        expect(endpoints.size).toBe(1);
        const [endpoint] = [...endpoints] as [string];
        const etcdName = hostOf(endpoint);
        const etcd = services[etcdName] ?? expect.fail(`${etcdName} is not a service`);
        expect(etcd.command).toContain(`--advertise-client-urls=http://${endpoint}`);
        expect(etcd.healthcheck.test).toEqual(['CMD', 'etcdctl', 'endpoint', 'health']);
        for (const [name, s] of own) {
          expect(flag(s, '--store'), name).toBe('etcd');
          expect(s.depends_on[etcdName]?.condition, `${name} waits for ${etcdName}`).toBe(
            'service_healthy',
          );
          expect(
            Object.keys(networks(s)).some((n) => n in networks(etcd)),
            `${name} reaches ${etcdName}`,
          ).toBe(true);
          expect(flag(s, '--advertise-addr')).toBe(`${name}:${portOf(flag(s, '--peering-addr')!)}`);
          expect(networks(s), `${name} is on wan, where the other cluster dials`).toHaveProperty(
            'wan',
          );
        }
      },
    );

    it("each cluster's Envoys dial a name that every server of that cluster, and nothing else, answers to", () => {
      const setups = Object.entries(services).filter(([, s]) =>
        (s.entrypoint ?? []).some((a: string) => a.endsWith('/setup.sh')),
      );
      expect(setups).toHaveLength(2);
      for (const [name, setup] of setups) {
        const dc = setup.environment.DATACENTER as string;
        const xds = setup.environment.ISTHMUS_XDS_ADDR as string;
        const alias = hostOf(xds);
        const [network] = Object.keys(networks(setup)) as [string];
        const answering = Object.entries(services)
          .filter(([, s]) => (networks(s)[network]?.aliases ?? []).includes(alias))
          .map(([n]) => n)
          .sort();
        expect(answering, `${name}: ${alias} on ${network}`).toEqual(
          serversOf(dc)
            .map(([n]) => n)
            .sort(),
        );
        for (const [, s] of serversOf(dc)) expect(portOf(flag(s, '--xds-addr')!)).toBe(portOf(xds));
      }
    });

    it('publishes every server on 127.0.0.1 only, on distinct ports; images pinned', () => {
      const published = servers.flatMap(([, s]) =>
        // docker-compose v1 prints `127.0.0.1:8500:8500/tcp`.
        (s.ports ?? []).map((p: string) => p.split(':').slice(0, 2).join(':')),
      );
      expect(published).toHaveLength(6);
      expect(new Set(published).size).toBe(6);
      for (const p of published) expect(p).toMatch(/^127\.0\.0\.1:\d+$/);
      for (const [name, s] of Object.entries(services))
        expect(String(s.image), `${name} image`).toMatch(/^[a-z0-9./-]+:[A-Za-z0-9._-]+$/);
    });

    it('promtool accepts the mounted Prometheus config, which scrapes exactly every server', () => {
      const mount = (services.prometheus.volumes as Json[])
        .map((v) => (typeof v === 'string' ? v.split(':') : [v.source, v.target]))
        .find(([, target]) => target === '/etc/prometheus/prometheus.yml');
      const file = mount?.[0] ?? expect.fail('prometheus.yml is not mounted');
      const check = spawnSync('promtool', ['check', 'config', file], { encoding: 'utf8' });
      expect(check.status, check.stdout + check.stderr).toBe(0);
      const config: Json = parseYaml(readFileSync(file, 'utf8'));
      const targets = config.scrape_configs
        .flatMap((s: Json) => s.static_configs.flatMap((c: Json) => c.targets))
        .sort();
      expect(targets).toEqual(
        servers.map(([n, s]) => `${n}:${portOf(flag(s, '--http-addr')!)}`).sort(),
      );
    });
  },
);
