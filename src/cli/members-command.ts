import type { Command } from 'commander';
import type { ServerJson, WanServerJson } from '../api/operator-routes.js';
import { apiClientFor, withApiOptions } from './api-options.js';
import { print, printTable } from './output.js';

/**
 * `isthmus members` (issue 15), after `consul members -wan`/`consul operator raft list-peers`: the
 * live servers of this cluster, which one leads, and which one answered. With `--wan` (issue 20,
 * Consul's `-wan`), every server of every WAN-federated datacenter with its state.
 */
export function registerMembersCommand(program: Command): void {
  withApiOptions(program.command('members'))
    .description(
      "the live servers of this cluster (a server that died leaves within its store lease's TTL)",
    )
    .option(
      '--wan',
      "every server of every WAN-federated datacenter: alive, or failed while its datacenter's link is down",
    )
    .action(async (opts: { wan?: boolean }, cmd: Command) => {
      const { client, format } = apiClientFor(cmd);
      if (opts.wan) {
        const wan = await client.get<WanServerJson[]>('/v1/operator/servers?wan=1');
        if (format === 'json') return print(wan);
        return printTable(
          ['NODE', 'ADDRESS', 'STATUS', 'DATACENTER', 'ROLE', 'SINCE'],
          wan.map((s) => [
            s.Self ? `${s.Name} (this)` : s.Name,
            s.Address || '-',
            s.Status,
            s.Datacenter,
            [s.Leader ? 'leader' : 'follower', ...(s.Primary ? ['primary'] : [])].join(', '),
            s.StatusSince,
          ]),
        );
      }
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
