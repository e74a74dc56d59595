import type { Command } from 'commander';
import type { CaRootsJson } from '../api/ca-routes.js';
import { apiClientFor, withApiOptions } from './api-options.js';
import { print, printTable } from './output.js';

/** `isthmus ca roots|rotate`, over the HTTP API. */
export function registerCaCommand(program: Command): void {
  const ca = program
    .command('ca')
    .description('the built-in CA: trusted roots and root rotation (HTTP API)');
  withApiOptions(ca.command('roots'))
    .description('show the trust domain and every trusted root, active first')
    .option('--pem', 'print only the PEM certificates of the trusted roots (a trust bundle)')
    .action(async (opts: { pem?: boolean }, cmd: Command) => {
      const { client, format } = apiClientFor(cmd);
      const roots = await client.get<CaRootsJson>('/v1/connect/ca/roots');
      if (opts.pem) return print(roots.Roots.map((r) => r.RootCert.trimEnd()).join('\n'));
      if (format === 'json') return print(roots);
      printRoots(roots);
    });
  withApiOptions(ca.command('rotate'))
    .description(
      'rotate the CA root without breaking connections: trust both roots, re-issue every leaf, then retire the old root',
    )
    .action(async (_opts: unknown, cmd: Command) => {
      const { client, format } = apiClientFor(cmd);
      await client.post('/v1/connect/ca/rotate');
      const roots = await client.get<CaRootsJson>('/v1/connect/ca/roots');
      if (format === 'json') return print(roots);
      const next = roots.Roots.find((r) => !r.Active);
      print(
        `CA root rotation started: root ${next?.ID ?? '(new)'} is trusted now and becomes active once proxies have it; the old root retires after every leaf is re-issued.`,
      );
    });
}

function printRoots(roots: CaRootsJson): void {
  print(`Trust domain: ${roots.TrustDomain}`);
  printTable(
    ['ID', 'NAME', 'ACTIVE', 'NOT AFTER'],
    roots.Roots.map((r) => [r.ID, r.Name, r.Active ? 'yes' : 'no', r.NotAfter]),
  );
}
