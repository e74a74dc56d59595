import type { Command } from 'commander';
import type {
  ApiTokenJson,
  CreatedApiTokenJson,
  CreatedProxyTokenJson,
  ProxyTokenJson,
} from '../api/acl-routes.js';
import { apiClientFor, withApiOptions } from './api-options.js';
import { print, printTable } from './output.js';

/**
 * `isthmus acl token create|list|delete`: proxy tokens for the xDS port; `isthmus acl api-token
 * create|list|revoke`: scoped HTTP API tokens. Both over the HTTP API, as the operator.
 */
export function registerAclCommand(program: Command): void {
  const acl = program
    .command('acl')
    .description('proxy tokens (xDS x-isthmus-token) and scoped HTTP API tokens');
  registerProxyTokenCommands(acl);
  registerApiTokenCommands(acl);
}

function registerProxyTokenCommands(acl: Command): void {
  const token = acl.command('token').description('create, list and delete proxy tokens');
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

function registerApiTokenCommands(acl: Command): void {
  const token = acl
    .command('api-token')
    .description('create, list and revoke scoped HTTP API tokens');
  withApiOptions(token.command('create'))
    .description('create an HTTP API token and print its SecretID (shown only once)')
    .requiredOption(
      '--scope <SCOPE>',
      'operator (everything), read (GET), peering (peering verbs) or service:NAME (that service and its sidecar)',
    )
    .option('--description <TEXT>', 'what the token is for', '')
    .action(async (opts: { scope: string; description: string }, cmd: Command) => {
      const { client, format } = apiClientFor(cmd);
      const created = await client.post<CreatedApiTokenJson>('/v1/acl/api-token', {
        Scope: opts.scope,
        Description: opts.description,
      });
      print(format === 'json' ? created : created.SecretID);
    });
  withApiOptions(token.command('list'))
    .description('list HTTP API tokens (without secrets)')
    .action(async (_opts: unknown, cmd: Command) => {
      const { client, format } = apiClientFor(cmd);
      const tokens = await client.get<ApiTokenJson[]>('/v1/acl/api-tokens');
      if (format === 'json') return print(tokens);
      if (tokens.length === 0) return print('No API tokens.');
      printTable(
        ['ACCESSOR ID', 'SCOPE', 'DESCRIPTION', 'CREATED'],
        tokens.map((t) => [t.AccessorID, t.Scope, t.Description, t.CreateTime]),
      );
    });
  withApiOptions(
    token
      .command('revoke')
      .argument('<ACCESSOR_ID>', "the token's AccessorID (from `acl api-token list`)"),
  )
    .description('revoke an HTTP API token; requests with it are refused at once')
    .action(async (accessorId: string, _opts: unknown, cmd: Command) => {
      const { client, format } = apiClientFor(cmd);
      await client.delete(`/v1/acl/api-token/${encodeURIComponent(accessorId)}`);
      print(format === 'json' ? { Revoked: accessorId } : `Revoked API token ${accessorId}`);
    });
}
