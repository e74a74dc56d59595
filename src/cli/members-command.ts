import type { Command } from 'commander';
import type { ServerJson } from '../api/operator-routes.js';
import { apiClientFor, withApiOptions } from './api-options.js';
import { print, printTable } from './output.js';

/**
 * `isthmus members` (issue 15), after `consul members -wan`/`consul operator raft list-peers`: the
 * live servers of this cluster, which one leads, and which one answered.
 */
export function registerMembersCommand(program: Command): void {
  withApiOptions(program.command('members'))
    .description(
      "the live servers of this cluster (a server that died leaves within its store lease's TTL)",
    )
    .action(async (_opts: unknown, cmd: Command) => {
      const { client, format } = apiClientFor(cmd);
      const servers = await client.get<ServerJson[]>('/v1/operator/servers');
      if (format === 'json') return print(servers);
      printTable(
        ['NAME', 'HTTP', 'XDS', 'PEERING', 'LEADER', 'VERSION', 'STARTED'],
        servers.map((s) => [
          s.Self ? `${s.Name} (this)` : s.Name,
          s.HTTPAddr,
          s.XdsAddr,
          s.PeeringAddr,
          s.Leader ? 'leader' : '-',
          s.Version,
          s.StartedAt,
        ]),
      );
    });
}
