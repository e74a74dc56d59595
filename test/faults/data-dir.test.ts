/**
 * Issue 21 §2, disk faults, with a real server process: its data directory on a small tmpfs that
 * fills up (writes get 507 naming ENOSPC, reads and xDS keep serving, nothing acknowledged is lost
 * or torn, writes work again once space returns), and a data directory that cannot be written at
 * start (one line naming the path and the reason, exit 1). Mounting needs root (CAP_SYS_ADMIN);
 * without it those cases are skipped and say why.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupProcesses, runCli, startServerProcess, tempDir } from '../helpers/process.js';
import {
  call,
  firstClusters,
  readyz,
  register,
  serviceName,
  serviceNames,
  sidecarId,
  stopWith,
} from './fleet.js';

const mounts: string[] = [];

function mountTmpfs(options: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'isthmus-tmpfs-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  mounts.push(dir);
  return dir;
}

/** Whether this process may mount a tmpfs (root in most CI containers and here). */
function canMount(): boolean {
  try {
    const dir = mountTmpfs('size=64k');
    execFileSync('umount', [dir], { stdio: 'pipe' });
    mounts.splice(mounts.indexOf(dir), 1);
    rmSync(dir, { recursive: true, force: true });
    return true;
  } catch {
    return false;
  }
}

const mountable = canMount();
if (!mountable)
  console.warn('test/faults/data-dir.test.ts: cannot mount tmpfs (not root?): tmpfs cases skipped');

afterAll(async () => {
  await cleanupProcesses();
  for (const dir of mounts.splice(0)) {
    execFileSync('umount', [dir], { stdio: 'pipe' });
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Fills the file system under `dir` with one file, to the last byte it takes. */
function fill(dir: string): string {
  const filler = join(dir, 'filler');
  const fd = openSync(filler, 'w');
  const chunk = Buffer.alloc(64 * 1024);
  try {
    for (let size = chunk.length; size >= 1; size >>= 1) {
      for (;;) {
        try {
          if (writeSync(fd, chunk, 0, size) < size) break;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
          break;
        }
      }
    }
  } finally {
    closeSync(fd);
  }
  return filler;
}

describe.skipIf(!mountable)('a data directory on a tmpfs that fills up', () => {
  it('refuses writes with 507 naming ENOSPC, keeps serving reads and xDS, loses nothing, and takes writes again once space returns', async () => {
    const mount = mountTmpfs('size=4m');
    const dataDir = join(mount, 'data');
    const server = await startServerProcess(['--xds-auth', 'off'], { dataDir });
    expect((await register(server, 0)).status).toBe(200);

    const filler = fill(mount);
    // Free pages inside the store file may take a few more writes; each adds 8 KB of Meta (16
    // values of 500 characters, within Consul's limits), so the file grows until the disk refuses.
    const big = Object.fromEntries(
      Array.from({ length: 16 }, (_, k) => [`k${k}`, 'x'.repeat(500)]),
    );
    const acked = [0];
    let refused: Awaited<ReturnType<typeof call>> | undefined;
    let refusedIndex = 1;
    for (; refusedIndex < 2_000; refusedIndex++) {
      const res = await register(server, refusedIndex, big);
      if (res.status !== 200) {
        refused = res;
        break;
      }
      acked.push(refusedIndex);
    }
    expect(refused?.status, JSON.stringify(refused?.body)).toBe(507);
    expect(refused?.body.error).toMatch(/ENOSPC/);
    expect(refused?.body.error).toContain(dataDir);
    console.log(`disk full after ${acked.length} registrations; the next got ${refused?.status}`);

    // Reads serve the committed state (the refused write is not there); xDS serves config; the
    // process is ready and healthy.
    const names = await serviceNames(server);
    expect(names.has(serviceName(refusedIndex))).toBe(false);
    for (const i of acked) expect(names.has(serviceName(i)), serviceName(i)).toBe(true);
    expect((await call(server, 'GET', `/v1/catalog/service/${serviceName(0)}`)).body).toHaveLength(
      1,
    );
    expect(await firstClusters(server, sidecarId(0))).toContain('local_app');
    expect((await readyz(server)).status).toBe(200);
    // Other writes are refused the same way, not with a 500.
    const deregister = await call(server, 'PUT', `/v1/agent/service/deregister/${serviceName(0)}`);
    if (deregister.status !== 200) expect(deregister.status).toBe(507);
    else acked.shift();

    rmSync(filler);
    const afterSpace = refusedIndex + 1;
    expect((await register(server, afterSpace)).status).toBe(200);
    acked.push(afterSpace);
    expect((await stopWith(server, 'SIGTERM')).code).toBe(0);

    // Nothing acknowledged is lost, nothing refused appears, and the store opens cleanly.
    const again = await startServerProcess(['--xds-auth', 'off'], { dataDir });
    const kept = await serviceNames(again);
    for (const i of acked) {
      expect(kept.has(serviceName(i)), serviceName(i)).toBe(true);
      expect(kept.has(sidecarId(i)), sidecarId(i)).toBe(true);
    }
    expect(kept.has(serviceName(refusedIndex))).toBe(false);
    expect((await register(again, afterSpace + 1)).status).toBe(200);
    expect((await stopWith(again, 'SIGTERM')).code).toBe(0);
  });
});

describe('a data directory that cannot be written at start', () => {
  const serverArgs = (dataDir: string) => [
    'server',
    ...['--http-addr', '127.0.0.1:0', '--xds-addr', '127.0.0.1:0'],
    ...['--peering-addr', '127.0.0.1:0', '--data-dir', dataDir],
  ];

  it('under a regular file: one line naming the path and ENOTDIR, exit 1', async () => {
    const file = join(tempDir(), 'not-a-dir');
    writeFileSync(file, '');
    const res = await runCli(serverArgs(join(file, 'data')));
    expect(res.code).toBe(1);
    expect(res.stderr).toBe(
      `isthmus: data directory ${join(file, 'data')} is not writable: ${file} is not a directory (ENOTDIR); choose another --data-dir or make it writable\n`,
    );
  });

  it.skipIf(!mountable)(
    'on a read-only mount: one line naming the path and EROFS, exit 1',
    async () => {
      const mount = mountTmpfs('size=64k,ro');
      for (const dataDir of [mount, join(mount, 'data')]) {
        const res = await runCli(serverArgs(dataDir));
        expect(res.code, dataDir).toBe(1);
        expect(res.stderr, dataDir).toBe(
          `isthmus: data directory ${dataDir} is not writable: read-only file system (EROFS) at ${mount}; choose another --data-dir or make it writable\n`,
        );
      }
    },
  );
});
