import { readFileSync } from 'node:fs';
import { IsthmusError } from '../errors.js';
import type { Logger } from '../log.js';
import { openEtcdStore } from './etcd-store.js';
import { openLmdbStore } from './lmdb-store.js';
import type { Store } from './store.js';

/** What `openStore` needs of the server's settings (`--store` and the `--etcd-*` flags). */
export interface StoreSettings {
  readonly store: 'lmdb' | 'etcd';
  readonly dataDir: string;
  readonly datacenter: string;
  readonly etcdEndpoints: readonly { readonly host: string; readonly port: number }[];
  readonly etcdPrefix: string;
  readonly etcdCaFile: string;
  readonly etcdCertFile: string;
  readonly etcdKeyFile: string;
  readonly etcdUsername: string;
  readonly etcdPasswordFile: string;
}

/**
 * The server's store: embedded LMDB in the data dir, or etcd (docs/architecture.md "Store"),
 * shared by every server of the cluster under its prefix. A setting that cannot work fails here, naming the
 * flag and the fix.
 */
export async function openStore(settings: StoreSettings, logger: Logger): Promise<Store> {
  if (settings.store === 'lmdb') return openLmdbStore(settings.dataDir, { logger });
  if (settings.etcdEndpoints.length === 0)
    throw new IsthmusError(
      'invalid_argument',
      '--store etcd needs --etcd-endpoints HOST:PORT[,HOST:PORT...] (the client URLs of etcd)',
      'etcdEndpoints',
    );
  const tlsFiles = [settings.etcdCaFile, settings.etcdCertFile, settings.etcdKeyFile];
  if (Boolean(settings.etcdCertFile) !== Boolean(settings.etcdKeyFile))
    throw new IsthmusError(
      'invalid_argument',
      '--etcd-cert-file and --etcd-key-file go together: give both or neither',
      'etcdCertFile',
    );
  if (Boolean(settings.etcdUsername) !== Boolean(settings.etcdPasswordFile))
    throw new IsthmusError(
      'invalid_argument',
      '--etcd-username and --etcd-password-file go together: give both or neither',
      'etcdUsername',
    );
  const read = (path: string, flag: string): string => {
    try {
      return readFileSync(path, 'utf8');
    } catch (err) {
      throw new IsthmusError(
        'invalid_argument',
        `${flag} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      );
    }
  };
  const tls = tlsFiles.some(Boolean)
    ? {
        ...(settings.etcdCaFile ? { caPem: read(settings.etcdCaFile, '--etcd-ca-file') } : {}),
        ...(settings.etcdCertFile
          ? { certPem: read(settings.etcdCertFile, '--etcd-cert-file') }
          : {}),
        ...(settings.etcdKeyFile ? { keyPem: read(settings.etcdKeyFile, '--etcd-key-file') } : {}),
      }
    : undefined;
  const scheme = tls ? 'https' : 'http';
  return openEtcdStore({
    endpoints: settings.etcdEndpoints.map((e) => `${scheme}://${e.host}:${e.port}`),
    prefix: settings.etcdPrefix || `isthmus/${settings.datacenter}/`,
    ...(tls ? { tls } : {}),
    ...(settings.etcdUsername
      ? {
          auth: {
            username: settings.etcdUsername,
            password: read(settings.etcdPasswordFile, '--etcd-password-file').trim(),
          },
        }
      : {}),
    logger,
  });
}
