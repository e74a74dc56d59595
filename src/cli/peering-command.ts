import { type Command, InvalidArgumentError } from 'commander';
import type { ExportedServiceJson, PeeringJson } from '../api/peering-routes.js';
import { parseToken } from '../peering/token.js';
import { type OutputFormat, apiClientFor, withApiOptions } from './api-options.js';
import { print, printFields, printTable } from './output.js';

/**
 * `isthmus peering generate-token | establish | list | read | delete | exported-services`: Consul's
 * verbs and fields over the HTTP API.
 */
export function registerPeeringCommand(program: Command): void {
  const peering = program
    .command('peering')
    .description('cluster peering: tokens, establishing, status and exported services (HTTP API)');
  withApiOptions(peering.command('generate-token'))
    .description(
      'generate a peering token for a peer (this cluster accepts); prints the token, and on stderr the command to run on the other cluster',
    )
    .requiredOption('--name <NAME>', "this cluster's name for the peer")
    .option('--meta <KEY=VALUE>', 'metadata of the peering (repeatable)', collectMeta, {})
    .option(
      '--server-external-address <HOST:PORT>',
      'address the peer dials instead of --advertise-addr (repeatable)',
      collect,
      [],
    )
    .action(
      async (
        opts: { name: string; meta: Record<string, string>; serverExternalAddress: string[] },
        cmd: Command,
      ) => {
        const { client, format } = apiClientFor(cmd);
        const body = {
          PeerName: opts.name,
          Meta: opts.meta,
          ...(opts.serverExternalAddress.length > 0
            ? { ServerExternalAddresses: opts.serverExternalAddress }
            : {}),
        };
        const { PeeringToken } = await client.post<{ PeeringToken: string }>(
          '/v1/peering/token',
          body,
        );
        print(format === 'json' ? { PeeringToken } : PeeringToken);
        const parsed = parseToken(PeeringToken);
        const ourName =
          parsed.ok && parsed.value.Remote.Datacenter
            ? parsed.value.Remote.Datacenter
            : '<a name for this cluster>';
        process.stderr.write(
          `Next, on the other cluster run:\n  isthmus peering establish --name ${ourName} --peering-token ${PeeringToken}\n`,
        );
      },
    );
  withApiOptions(peering.command('establish'))
    .description(
      'establish a peering with a token generated on the other cluster (this cluster dials)',
    )
    .requiredOption('--name <NAME>', "this cluster's name for the peer")
    .requiredOption(
      '--peering-token <TOKEN>',
      'the token printed by `isthmus peering generate-token` on the other cluster',
    )
    .option('--meta <KEY=VALUE>', 'metadata of the peering (repeatable)', collectMeta, {})
    .action(
      async (
        opts: { name: string; peeringToken: string; meta: Record<string, string> },
        cmd: Command,
      ) => {
        const { client, format } = apiClientFor(cmd);
        await client.post('/v1/peering/establish', {
          PeerName: opts.name,
          PeeringToken: opts.peeringToken,
          Meta: opts.meta,
        });
        const p = await client.get<PeeringJson>(`/v1/peering/${encodeURIComponent(opts.name)}`);
        if (format === 'json') return print(p);
        print(
          `Peering "${p.Name}" established with ${p.PeerServerName}; state ${p.State} (the stream connects next)`,
        );
      },
    );
  withApiOptions(peering.command('list'))
    .description('list peerings with their state and health')
    .action(async (_opts: unknown, cmd: Command) => {
      const { client, format } = apiClientFor(cmd);
      printList(await client.get<PeeringJson[]>('/v1/peerings'), format);
    });
  withApiOptions(peering.command('read'))
    .description('show one peering: state, peer, stream status')
    .requiredOption('--name <NAME>', "the peering's name")
    .action(async (opts: { name: string }, cmd: Command) => {
      const { client, format } = apiClientFor(cmd);
      const p = await client.get<PeeringJson>(`/v1/peering/${encodeURIComponent(opts.name)}`);
      if (format === 'json') return print(p);
      printPeering(p);
    });
  withApiOptions(peering.command('delete'))
    .description(
      'delete a peering: the peer is told (it shows TERMINATED) and imported data is dropped',
    )
    .requiredOption('--name <NAME>', "the peering's name")
    .action(async (opts: { name: string }, cmd: Command) => {
      const { client, format } = apiClientFor(cmd);
      await client.delete(`/v1/peering/${encodeURIComponent(opts.name)}`);
      print(format === 'json' ? { Deleted: opts.name } : `Peering "${opts.name}" is being deleted`);
    });
  withApiOptions(peering.command('exported-services'))
    .description('list the services this cluster exports, with the peers that consume each')
    .action(async (_opts: unknown, cmd: Command) => {
      const { client, format } = apiClientFor(cmd);
      const services = await client.get<ExportedServiceJson[]>('/v1/exported-services');
      if (format === 'json') return print(services);
      if (services.length === 0) return print('No exported services.');
      printTable(
        ['SERVICE', 'PEERS'],
        services.map((s) => [s.Service, s.Consumers.Peers.join(',')]),
      );
    });
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function collectMeta(value: string, previous: Record<string, string>): Record<string, string> {
  const at = value.indexOf('=');
  if (at <= 0) throw new InvalidArgumentError(`${JSON.stringify(value)} is not KEY=VALUE`);
  return { ...previous, [value.slice(0, at)]: value.slice(at + 1) };
}

function printList(peerings: readonly PeeringJson[], format: OutputFormat): void {
  if (format === 'json') return print(peerings);
  if (peerings.length === 0) return print('No peerings.');
  printTable(
    ['NAME', 'STATE', 'HEALTHY', 'REMOTE DC', 'IMPORTED', 'EXPORTED'],
    peerings.map((p) => [
      p.Name,
      p.State,
      p.Healthy ? 'yes' : 'no',
      p.Remote.Datacenter || '-',
      String(p.StreamStatus.ImportedServices.length),
      String(p.StreamStatus.ExportedServices.length),
    ]),
  );
}

function printPeering(p: PeeringJson): void {
  const s = p.StreamStatus;
  const rows: [string, string][] = [
    ['Name', p.Name],
    ['ID', p.ID],
    ['State', p.State],
    ['Healthy', p.Healthy ? 'yes' : 'no'],
    ['Peer ID', p.PeerID || '-'],
    ['Peer server name', p.PeerServerName || '-'],
    ['Peer server addresses', p.PeerServerAddresses.join(', ') || '-'],
    ['Peer CA roots', String(p.PeerCAPems.length)],
    [
      'Remote',
      p.Remote.Datacenter
        ? `${p.Remote.Datacenter} (partition ${p.Remote.Partition || 'default'})`
        : '-',
    ],
    [
      'Meta',
      Object.entries(p.Meta)
        .map(([k, v]) => `${k}=${v}`)
        .join(', ') || '-',
    ],
    ['Imported services', s.ImportedServices.join(', ') || '-'],
    ['Exported services', s.ExportedServices.join(', ') || '-'],
    ['Last heartbeat', s.LastHeartbeat ?? '-'],
    ['Last receive', s.LastReceive ?? '-'],
    ['Last send', s.LastSend ?? '-'],
    ['Last error', s.LastError || '-'],
    ['Last NACK', s.LastNack || '-'],
  ];
  if (p.DeletedAt) rows.push(['Deleted at', p.DeletedAt]);
  // LastError and LastNack are the peer's words: printFields shows control characters escaped.
  printFields(rows);
}
