/**
 * A real single-member etcd (Debian's `etcd-server`, which `.ci/run` installs) on free loopback
 * ports with its data in a temporary directory, for the store on etcd (docs/architecture.md
 * "Store"). `stop` kills it; `restart` brings it back on the same ports and data.
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
  // /dev/shm when there is one: etcd syncs every write, and the tests are not about the disk.
  const base = process.platform === 'linux' ? '/dev/shm' : tmpdir();
  const dataDir = mkdtempSync(join(base, 'isthmus-etcd-'));
  const clientPort = await freePort();
  const peerPort = await freePort();
  const endpoint = `127.0.0.1:${clientPort}`;
  let child: ChildProcess | undefined;
  let log = '';
  const start = async () => {
    log = '';
    const proc = spawn(
      'etcd',
      [
        '--name',
        'test',
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
        `test=http://127.0.0.1:${peerPort}`,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    proc.stderr?.on('data', (chunk: Buffer) => {
      log = (log + chunk.toString()).slice(-4_000);
    });
    child = proc;
    await waitFor(
      async () => {
        if (proc.exitCode !== null) throw new Error(`etcd exited: ${log}`);
        const res = await fetch(`http://${endpoint}/health`).catch(() => undefined);
        return res?.ok === true && ((await res.json()) as { health?: string }).health === 'true';
      },
      { timeoutMs: 30_000, intervalMs: 50, what: 'etcd to be healthy' },
    );
  };
  const kill = async () => {
    const proc = child;
    if (!proc || proc.exitCode !== null) return;
    const gone = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill('SIGKILL');
    await withDeadline(gone, { timeoutMs: 10_000, what: 'etcd to exit' });
  };
  await start();
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
