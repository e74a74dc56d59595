import type { Command } from 'commander';
import type { CreatedProxyTokenJson, ProxyTokenJson } from '../api/acl-routes.js';
import { apiClientFor, withApiOptions } from './api-options.js';
import { print, printTable } from './output.js';

/** `isthmus acl token create|list|delete`: proxy tokens for the xDS port, over the HTTP API. */
export function registerAclCommand(program: Command): void {
  const token = program
    .command('acl')
    .description('proxy tokens that xDS streams present as x-isthmus-token (HTTP API)')
    .command('token')
    .description('create, list and delete proxy tokens');
  withApiOptions(token.command('create'))
    .description('create a token bound to one proxy ID and print its SecretID (shown only once)')
    .requiredOption(
      '--proxy-id <ID>',
      "the proxy's registered service ID, which it sends as node.id",
    )
    .action(async (opts: { proxyId: string }, cmd: Command) => {
      const { client, format } = apiClientFor(cmd);
      const created = await client.post<CreatedProxyTokenJson>('/v1/acl/token', {
        ProxyID: opts.proxyId,
      });
      print(format === 'json' ? created : created.SecretID);
    });
  withApiOptions(token.command('list'))
    .description('list proxy tokens (without secrets)')
    .action(async (_opts: unknown, cmd: Command) => {
      const { client, format } = apiClientFor(cmd);
      const tokens = await client.get<ProxyTokenJson[]>('/v1/acl/tokens');
      if (format === 'json') return print(tokens);
      if (tokens.length === 0) return print('No proxy tokens.');
      printTable(
        ['ACCESSOR ID', 'PROXY ID', 'CREATED'],
        tokens.map((t) => [t.AccessorID, t.ProxyID, t.CreateTime]),
      );
    });
  withApiOptions(
    token
      .command('delete')
      .argument('<ACCESSOR_ID>', "the token's AccessorID (from `acl token list`)"),
  )
    .description('delete a proxy token; new xDS streams with it are refused')
    .action(async (accessorId: string, _opts: unknown, cmd: Command) => {
      const { client, format } = apiClientFor(cmd);
      await client.delete(`/v1/acl/token/${encodeURIComponent(accessorId)}`);
      print(format === 'json' ? { Deleted: accessorId } : `Deleted proxy token ${accessorId}`);
    });
}
