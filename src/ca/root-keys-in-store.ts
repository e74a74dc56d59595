import { z } from 'zod';
import { IsthmusError } from '../errors.js';
import { RecordCollection, type Store } from '../store/index.js';

/** Where a CA root's private key is kept: files on this server's disk, or the shared store. */
export interface RootKeys {
  write(rootId: string, keyPem: string): Promise<void>;
  read(rootId: string): Promise<string>;
  remove(rootId: string): Promise<void>;
  /** Removes keys of roots that no longer exist; resolves with what was removed. */
  removeAllExcept(rootIds: readonly string[]): Promise<string[]>;
}

const rootKeyRecord = z.strictObject({ keyPem: z.string() });

/** `ca/keys/<root id>` */
const storedRootKeys = new RecordCollection(
  { what: 'CA root key', version: 1, schema: rootKeyRecord },
  'ca/keys/',
);

/**
 * Root private keys in the store (`--store etcd`, issue 15): every server of the cluster signs
 * with the same root, so they cannot live on one server's disk. Whoever can read the store's
 * prefix can read them: README "Running several servers" says what an operator must protect
 * (etcd client TLS and auth, the role that may read the prefix).
 */
export class RootKeysInStore implements RootKeys {
  constructor(private readonly store: Store) {}

  async write(rootId: string, keyPem: string): Promise<void> {
    await storedRootKeys.save(this.store, rootId, { keyPem });
  }

  async read(rootId: string): Promise<string> {
    const rec = await storedRootKeys.get(this.store, rootId);
    if (!rec)
      throw new IsthmusError(
        'failed_precondition',
        `the private key of CA root ${rootId} is missing from the store (${storedRootKeys.key(rootId)}); restore the store from a backup, or start on an empty prefix to create a new CA`,
      );
    return rec.keyPem;
  }

  async remove(rootId: string): Promise<void> {
    await this.store.delete(storedRootKeys.key(rootId));
  }

  /**
   * Nothing: another server may have just written the key of a root it is about to commit (a
   * rotation starting), so a key is removed only when its root is retired.
   */
  async removeAllExcept(): Promise<string[]> {
    return [];
  }
}
