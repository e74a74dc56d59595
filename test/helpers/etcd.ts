/**
 * A real etcd (Debian's `etcd-server`, which `.ci/run` installs) on free loopback ports with its
 * data in a temporary directory, for the store on etcd (docs/architecture.md "Store"): a single
 * member, or a three-member cluster for the failure tests. `kill` ends a member (SIGKILL);
 * `restart` brings it back on the same ports and data.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './process.js';
import { hasTool } from './tools.js';
import { waitFor, withDeadline } from './wait.js';

/** `describe.skipIf(skipWithoutEtcd())`: skips outside CI only; under CI a missing etcd fails. */
export function skipWithoutEtcd(): boolean {
  if (hasTool('etcd')) return false;
  const how = 'apt-get install etcd-server (bash .ci/run does)';
  if (process.env.CI) throw new Error(`etcd missing: ${how}`);
  console.warn(`skipping: etcd not installed (${how})`);
  return true;
}

export interface EtcdServer {
  /** `127.0.0.1:<client port>`, what `--etcd-endpoints` takes. */
  readonly endpoint: string;
  /** Kills etcd (SIGKILL) and waits for it; its data stays. */
  kill(): Promise<void>;
  /** Starts it again on the same ports and data. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export async function startEtcd(): Promise<EtcdServer> {
  const [member] = await startMembers(1);
  return member!;
}

/** A three-member etcd cluster: `endpoints` for `--etcd-endpoints`, each member killable alone. */
export interface EtcdCluster {
  readonly members: readonly EtcdServer[];
  /** Every member's client endpoint, comma-separated. */
  readonly endpoints: string;
  /** The member that is etcd's Raft leader now (from each member's status). */
  leader(): Promise<EtcdServer>;
  stop(): Promise<void>;
}

export async function startEtcdCluster(size = 3): Promise<EtcdCluster> {
  const members = await startMembers(size);
  return {
    members,
    endpoints: members.map((m) => m.endpoint).join(','),
    async leader() {
      return waitFor(
        async () => {
          for (const m of members) {
            const res = await fetch(`http://${m.endpoint}/v3/maintenance/status`, {
              method: 'POST',
              body: '{}',
            }).catch(() => undefined);
            if (!res?.ok) continue;
            const status = (await res.json()) as {
              leader?: string;
              header?: { member_id?: string };
            };
            if (status.leader !== undefined && status.leader === status.header?.member_id) return m;
          }
          return undefined;
        },
        { timeoutMs: 30_000, intervalMs: 100, what: 'an etcd member to lead' },
      );
    },
    async stop() {
      await Promise.all(members.map((m) => m.stop()));
    },
  };
}

/**
 * Starts `size` members on free loopback ports. etcd cannot bind port 0 and tell us which it took,
 * so each port is one the OS just gave out (bound at 0, then released); another process may take it
 * before etcd binds it, and then that member exits with "address already in use". That is a lost
 * race for a port, not a failure of what is tested: the whole cluster starts again on new ports.
 */
async function startMembers(size: number): Promise<EtcdServer[]> {
  for (let attempt = 1; ; attempt++) {
    const members = await Promise.all(
      Array.from({ length: size }, async (_, i) => ({
        name: `m${i}`,
        clientPort: await freePort(),
        peerPort: await freePort(),
      })),
    );
    const cluster = members.map((m) => `${m.name}=http://127.0.0.1:${m.peerPort}`).join(',');
    const token = `isthmus-test-${process.pid}-${Date.now()}-${attempt}`;
    const servers = members.map((m) => member(m.name, m.clientPort, m.peerPort, cluster, token));
    // One member that exits ends the others' wait for a quorum at once.
    const killAll = () => Promise.all(servers.map((s) => s.kill()));
    const started = await Promise.allSettled(
      servers.map((s) =>
        s.restart().catch(async (err: unknown) => {
          await killAll();
          throw err;
        }),
      ),
    );
    const failed = started.flatMap((r) => (r.status === 'rejected' ? [r.reason as Error] : []));
    if (failed.length === 0) return servers;
    await Promise.all(servers.map((s) => s.stop()));
    const portTaken = failed.some((err) => /address already in use/.test(err.message));
    if (!portTaken || attempt >= 5) throw failed[0];
  }
}

function member(
  name: string,
  clientPort: number,
  peerPort: number,
  initialCluster: string,
  clusterToken: string,
): EtcdServer {
  // /dev/shm when there is one: etcd syncs every write, and the tests are not about the disk.
  const base = process.platform === 'linux' ? '/dev/shm' : tmpdir();
  const dataDir = mkdtempSync(join(base, 'isthmus-etcd-'));
  const endpoint = `127.0.0.1:${clientPort}`;
  let child: ChildProcess | undefined;
  let log = '';
  const start = async () => {
    log = '';
    const proc = spawn(
      'etcd',
      [
        '--name',
        name,
        '--data-dir',
        dataDir,
        '--listen-client-urls',
        `http://${endpoint}`,
        '--advertise-client-urls',
        `http://${endpoint}`,
        '--listen-peer-urls',
        `http://127.0.0.1:${peerPort}`,
        '--initial-advertise-peer-urls',
        `http://127.0.0.1:${peerPort}`,
        '--initial-cluster',
        initialCluster,
        '--initial-cluster-token',
        clusterToken,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    proc.stderr?.on('data', (chunk: Buffer) => {
      log = (log + chunk.toString()).slice(-4_000);
    });
    child = proc;
    await waitFor(
      async () => {
        if (proc.exitCode !== null) throw new Error(`etcd ${name} exited: ${log}`);
        const res = await fetch(`http://${endpoint}/health`).catch(() => undefined);
        return res?.ok === true && ((await res.json()) as { health?: string }).health === 'true';
      },
      { timeoutMs: 30_000, intervalMs: 50, what: `etcd ${name} to be healthy` },
    );
  };
  const kill = async () => {
    const proc = child;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill('SIGKILL');
    await withDeadline(gone, { timeoutMs: 10_000, what: `etcd ${name} to exit` });
  };
  return {
    endpoint,
    kill,
    restart: start,
    async stop() {
      await kill();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
