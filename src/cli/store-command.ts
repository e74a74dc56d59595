import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { serverSettings } from '../config/index.js';
import { IsthmusError } from '../errors.js';
import { createLogger } from '../log.js';
import { print } from './output.js';
import type { CopyReport } from './store-copy.js';

interface CopyFlags {
  readonly from: string;
  readonly to: string;
  readonly datacenter?: string;
  readonly force?: boolean;
  readonly etcdCaFile?: string;
  readonly etcdCertFile?: string;
  readonly etcdKeyFile?: string;
  readonly etcdUsername?: string;
  readonly etcdPasswordFile?: string;
}

/** The etcd TLS and auth flags, as `isthmus server` takes them. */
const etcdFlags = [
  serverSettings.etcdCaFile,
  serverSettings.etcdCertFile,
  serverSettings.etcdKeyFile,
  serverSettings.etcdUsername,
  serverSettings.etcdPasswordFile,
];

/** `isthmus store copy`: moves a single server's store onto etcd (README "Running several servers"). */
export function registerStoreCommand(program: Command): void {
  const store = program.command('store').description("the server's store, offline");
  const copy = store
    .command('copy')
    .description(
      'copy a stopped single-server store (LMDB data dir, CA root keys included) to an empty etcd prefix',
    )
    .requiredOption('--from <lmdb:DIR>', 'the data dir of the stopped server, e.g. lmdb:./data')
    .requiredOption(
      '--to <etcd:HOST:PORT[,HOST:PORT...][/PREFIX]>',
      'etcd client endpoints and key prefix (default prefix isthmus/<datacenter>/)',
    )
    .option('--datacenter <NAME>', 'the default prefix is isthmus/<NAME>/', 'dc1')
    .option('--force', 'replace whatever is under the destination prefix');
  for (const spec of etcdFlags) copy.option(`${spec.flag} <${spec.valueName}>`, spec.description);
  copy.action(async (flags: CopyFlags, cmd: Command) => {
    const usage = (message: string): never =>
      cmd.error(message, { exitCode: 2, code: 'isthmus.usage' });
    const dir = parseFrom(flags.from, usage);
    const to = parseTo(flags.to, flags.datacenter ?? 'dc1', usage);
    print(report(await run(dir, to, flags, usage), dir, to));
  });
}

function parseFrom(raw: string, usage: (message: string) => never): string {
  const dir = raw.startsWith('lmdb:') ? raw.slice('lmdb:'.length) : '';
  if (dir === '') return usage(`--from: ${JSON.stringify(raw)} is not lmdb:DIR`);
  if (!existsSync(join(dir, 'data.mdb')))
    return usage(
      `--from: ${dir} holds no isthmus store (no data.mdb); give the server's --data-dir`,
    );
  return dir;
}

function parseTo(
  raw: string,
  datacenter: string,
  usage: (message: string) => never,
): { endpoints: string; prefix: string } {
  const body = raw.startsWith('etcd:') ? raw.slice('etcd:'.length) : undefined;
  if (body === undefined)
    return usage(`--to: ${JSON.stringify(raw)} is not etcd:HOST:PORT[,HOST:PORT...][/PREFIX]`);
  const slash = body.indexOf('/');
  const endpoints = slash < 0 ? body : body.slice(0, slash);
  const given = slash < 0 ? '' : body.slice(slash + 1);
  const prefix = given === '' ? `isthmus/${datacenter}/` : given.replace(/\/?$/, '/');
  for (const [spec, value] of [
    [serverSettings.etcdEndpoints, endpoints],
    [serverSettings.etcdPrefix, prefix],
  ] as const) {
    const parsed = spec.parse(value);
    if (!parsed.ok || value === '')
      return usage(`--to: ${parsed.ok ? 'no endpoints' : parsed.error}`);
  }
  return { endpoints, prefix };
}

async function run(
  dir: string,
  to: { endpoints: string; prefix: string },
  flags: CopyFlags,
  usage: (message: string) => never,
): Promise<CopyReport> {
  const logger = createLogger('warn');
  // Loaded lazily so `isthmus --help` does not pay for LMDB and etcd.
  const [{ openLmdbStore, openStore }, { copyStore }] = await Promise.all([
    import('../store/index.js'),
    import('./store-copy.js'),
  ]);
  const closing: (() => Promise<void>)[] = [];
  try {
    const source = await openLmdbStore(dir, { exclusive: true });
    closing.push(() => source.close());
    const endpoints = serverSettings.etcdEndpoints.parse(to.endpoints);
    const target = await openStore(
      {
        store: 'etcd',
        dataDir: dir,
        datacenter: flags.datacenter ?? 'dc1',
        etcdEndpoints: endpoints.ok ? endpoints.value : [],
        etcdPrefix: to.prefix,
        etcdCaFile: flags.etcdCaFile ?? '',
        etcdCertFile: flags.etcdCertFile ?? '',
        etcdKeyFile: flags.etcdKeyFile ?? '',
        etcdUsername: flags.etcdUsername ?? '',
        etcdPasswordFile: flags.etcdPasswordFile ?? '',
      },
      logger,
    );
    closing.push(() => target.close());
    return await copyStore(source, target, {
      dataDir: dir,
      force: flags.force === true,
      onProgress: (message) => process.stderr.write(`isthmus: store copy: ${message}\n`),
    });
  } catch (err) {
    // A store in use, a non-empty destination, bad etcd flags: the user's to fix (exit 2).
    if (
      err instanceof IsthmusError &&
      ['invalid_argument', 'failed_precondition'].includes(err.code)
    )
      return usage(err.message);
    throw err;
  } finally {
    for (const close of closing.reverse()) await close().catch(() => undefined);
  }
}

function report(
  copied: CopyReport,
  dir: string,
  to: { endpoints: string; prefix: string },
): string {
  const width = Math.max(...[...copied.families.keys()].map((f) => f.length));
  return [
    `copied ${copied.keys} keys from lmdb:${dir} (revision ${copied.sourceRevision}) to etcd:${to.endpoints} under ${to.prefix} (revision ${copied.revision})${copied.replaced > 0 ? `, replacing ${copied.replaced} keys` : ''}:`,
    ...[...copied.families].map(([family, n]) => `  ${family.padEnd(width)}  ${n}`),
  ].join('\n');
}
