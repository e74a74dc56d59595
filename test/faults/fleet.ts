/**
 * Shared by the fault tests (test/faults/): a fleet of services with sidecars registered through
 * the HTTP API of a real server process, the checks made after a restart, and the probes.
 */
import { TypeUrl } from '../../src/xds/types.js';
import { adsClient, connectDelta } from '../helpers/fake-envoy.js';
import type { ServerProcess } from '../helpers/process.js';
import { withDeadline } from '../helpers/wait.js';

/** Service `svc-00042` with its sidecar `svc-00042-sidecar-proxy`: ids sort as they number. */
export const serviceName = (i: number): string => `svc-${String(i).padStart(5, '0')}`;
export const sidecarId = (i: number): string => `${serviceName(i)}-sidecar-proxy`;

/**
 * Service `i` with a sidecar on port 30000 + i (the automatic range, 21000-21255, holds only 256
 * sidecars per address).
 */
export function registration(i: number, meta: Record<string, string> = {}): unknown {
  const name = serviceName(i);
  return {
    ID: name,
    Name: name,
    Address: '127.0.0.1',
    Port: 8080,
    Meta: meta,
    Connect: { SidecarService: { Port: 30_000 + i } },
  };
}

export interface Answer {
  readonly status: number;
  readonly body: any;
}

export async function call(
  server: ServerProcess,
  method: string,
  path: string,
  body?: unknown,
): Promise<Answer> {
  const res = await fetch(server.url(path), {
    method,
    ...(body !== undefined && {
      body: JSON.stringify(body),
      headers: { 'content-type': 'application/json' },
    }),
  });
  const text = await res.text();
  return { status: res.status, body: text === '' ? undefined : JSON.parse(text) };
}

export const register = (server: ServerProcess, i: number, meta?: Record<string, string>) =>
  call(server, 'PUT', '/v1/agent/service/register', registration(i, meta));

/**
 * Registers services `from` … `to - 1` (each with a sidecar), `concurrency` requests at a time
 * (writes are serialized by the store; a few in flight keep it busy). Throws on any refusal.
 */
export async function registerFleet(
  server: ServerProcess,
  from: number,
  to: number,
  concurrency = 8,
): Promise<void> {
  let next = from;
  const worker = async (): Promise<void> => {
    while (next < to) {
      const i = next++;
      const res = await register(server, i);
      if (res.status !== 200)
        throw new Error(`register ${serviceName(i)}: ${res.status} ${JSON.stringify(res.body)}`);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

/** The names of the services registered (sidecars are listed under their own names). */
export async function serviceNames(server: ServerProcess): Promise<Set<string>> {
  const res = await call(server, 'GET', '/v1/catalog/services');
  if (res.status !== 200) throw new Error(`GET /v1/catalog/services: ${res.status}`);
  return new Set(Object.keys(res.body as Record<string, unknown>));
}

export interface Readiness {
  readonly status: number;
  readonly body: {
    status: string;
    pending?: { proxiesWithoutSnapshot?: number };
    not_ready?: string[];
  };
}

export const readyz = (server: ServerProcess): Promise<Readiness> =>
  call(server, 'GET', '/readyz') as Promise<Readiness>;

/** Sidecar snapshots built and published since the process started (`/metrics`). */
export async function sidecarBuilds(server: ServerProcess): Promise<number> {
  const text = await (await fetch(server.url('/metrics'))).text();
  const line = /^isthmus_snapshot_builds_total\{kind="connect-proxy",result="ok"\} (\d+)$/m.exec(
    text,
  );
  return Number(line?.[1] ?? 0);
}

/**
 * The cluster names of a proxy's first CDS answer, as a Delta client that connects now gets them
 * (the server runs with `--xds-auth off`).
 */
export async function firstClusters(server: ServerProcess, proxyId: string): Promise<string[]> {
  const client = adsClient(`127.0.0.1:${server.xdsPort}`, await server.xdsTls());
  const envoy = connectDelta(client, proxyId);
  try {
    envoy.send(TypeUrl.cluster, { subscribe: ['*'] });
    const first = await withDeadline(envoy.next(20_000), {
      timeoutMs: 30_000,
      what: `the first CDS answer for ${proxyId}`,
    });
    return first.resources.map((r) => r.name).sort();
  } finally {
    envoy.close();
    client.close();
  }
}

/** Sends `signal` and resolves with how the process ended (bounded: a hang is a failure). */
export async function stopWith(
  server: ServerProcess,
  signal: NodeJS.Signals,
): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }> {
  const sentAt = Date.now();
  server.child.kill(signal);
  const exit = await withDeadline(server.exited, {
    timeoutMs: 30_000,
    what: `the server to exit after ${signal}`,
  });
  return { ...exit, ms: Date.now() - sentAt };
}
