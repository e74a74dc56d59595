import fs from 'node:fs/promises';
import path from 'node:path';
import { IsthmusError } from '../errors.js';
import type { RootKeys } from './root-keys-in-store.js';

/**
 * Root private keys live in files under `<dataDir>/ca/` (dir 0700, files 0600), not in the Store:
 * the store's contents travel (etcd replication, backups, debug dumps), a key file stays on the
 * server's disk with owner-only permissions. The store holds the certificates and the state.
 * Servers that share a store (etcd) keep the keys there instead (root-keys-in-store.ts).
 */
export class RootKeyFiles implements RootKeys {
  readonly dir: string;

  constructor(dataDir: string) {
    this.dir = path.join(dataDir, 'ca');
  }

  pathOf(rootId: string): string {
    return path.join(this.dir, `${rootId.replaceAll(':', '')}.key`);
  }

  /** Writes atomically (temp file + rename) and durably (fsync) with mode 0600. */
  async write(rootId: string, keyPem: string): Promise<void> {
    await fs.mkdir(this.dir, { recursive: true, mode: 0o700 });
    await fs.chmod(this.dir, 0o700);
    const target = this.pathOf(rootId);
    const temp = `${target}.tmp-${process.pid}`;
    const handle = await fs.open(temp, 'w', 0o600);
    try {
      await handle.writeFile(keyPem, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(temp, target);
  }

  async read(rootId: string): Promise<string> {
    const file = this.pathOf(rootId);
    try {
      return await fs.readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      throw new IsthmusError(
        'failed_precondition',
        `the private key of CA root ${rootId} is missing (${file}); restore it from a backup of the data directory, or start with an empty data directory to create a new CA`,
      );
    }
  }

  async remove(rootId: string): Promise<void> {
    await fs.rm(this.pathOf(rootId), { force: true });
  }

  /**
   * Removes key files of roots that no longer exist (left by a crash between commit and cleanup).
   */
  async removeAllExcept(rootIds: readonly string[]): Promise<string[]> {
    const keep = new Set(rootIds.map((id) => path.basename(this.pathOf(id))));
    const names = await fs.readdir(this.dir).catch(() => [] as string[]);
    const stale = names.filter(
      (n) => (n.endsWith('.key') || n.includes('.key.tmp-')) && !keep.has(n),
    );
    await Promise.all(stale.map((n) => fs.rm(path.join(this.dir, n), { force: true })));
    return stale;
  }
}
