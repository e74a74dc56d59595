import type { Command } from 'commander';
import type { ApiClient } from '../api/client.js';
import { type OutputFormat, apiClientFor, withApiOptions } from './api-options.js';
import { readDocument } from './input-file.js';
import { print, printTable } from './output.js';

/** `isthmus services register|deregister|list`, over the HTTP API. */
export function registerServicesCommand(program: Command): void {
  const services = program
    .command('services')
    .description('register, deregister and list services (HTTP API)');
  withApiOptions(
    services
      .command('register')
      .argument('<FILE|->', 'Consul service registration, JSON or YAML (- = stdin)'),
  )
    .description('register a service (and its Connect sidecar) from a Consul registration body')
    .action(async (file: string, _opts: unknown, cmd: Command) => {
      const { client, format } = apiClientFor(cmd);
      const body = await readDocument(file);
      await client.put('/v1/agent/service/register', body);
      const ids = registeredIds(body);
      if (format === 'json') print({ Registered: ids });
      else for (const id of ids) print(`Registered service: ${id}`);
    });
  withApiOptions(services.command('deregister').argument('<ID>', 'service instance ID'))
    .description('deregister a service instance (and the sidecar registered with it)')
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      const { client, format } = apiClientFor(cmd);
      await client.put(`/v1/agent/service/deregister/${encodeURIComponent(id)}`);
      print(format === 'json' ? { Deregistered: id } : `Deregistered service: ${id}`);
    });
  withApiOptions(services.command('list'))
    .description('list every service instance with its health')
    .option('--dc <DC>', "another datacenter's instances (WAN federation: through the gateways)")
    .action(async (opts: { dc?: string }, cmd: Command) => {
      const { client, format } = apiClientFor(cmd);
      printInstances(await listInstances(client, opts.dc), format);
    });
}

interface InstanceRow {
  readonly ID: string;
  readonly Name: string;
  readonly Kind: string;
  readonly Address: string;
  readonly Port: number;
  readonly Health: string;
  readonly Tags: readonly string[];
}

interface HealthEntry {
  readonly Service: {
    ID: string;
    Service: string;
    Kind?: string;
    Address: string;
    Port: number;
    Tags: string[];
  };
  readonly Checks: readonly { Status: string }[];
}

async function listInstances(client: ApiClient, dc: string | undefined): Promise<InstanceRow[]> {
  const query = dc === undefined ? '' : `?dc=${encodeURIComponent(dc)}`;
  const names = Object.keys(
    await client.get<Record<string, string[]>>(`/v1/catalog/services${query}`),
  );
  const rows: InstanceRow[] = [];
  for (const name of names) {
    for (const { Service: s, Checks } of await client.get<HealthEntry[]>(
      `/v1/health/service/${encodeURIComponent(name)}${query}`,
    )) {
      rows.push({
        ID: s.ID,
        Name: s.Service,
        Kind: s.Kind || 'typical',
        Address: s.Address,
        Port: s.Port,
        Health: worst(Checks),
        Tags: s.Tags,
      });
    }
  }
  return rows.sort((a, b) => (a.ID < b.ID ? -1 : a.ID > b.ID ? 1 : 0));
}

function worst(checks: readonly { Status: string }[]): string {
  for (const status of ['critical', 'warning'])
    if (checks.some((c) => c.Status === status)) return status;
  return 'passing';
}

function printInstances(rows: readonly InstanceRow[], format: OutputFormat): void {
  if (format === 'json') return print(rows);
  if (rows.length === 0) return print('No services registered.');
  const address = (r: InstanceRow): string =>
    r.Address.includes(':') ? `[${r.Address}]:${r.Port}` : `${r.Address || '-'}:${r.Port}`;
  printTable(
    ['ID', 'NAME', 'KIND', 'ADDRESS', 'HEALTH', 'TAGS'],
    rows.map((r) => [r.ID, r.Name, r.Kind, address(r), r.Health, r.Tags.join(',')]),
  );
}

/** The IDs a registration body creates: the service's (ID, or Name) and its Connect sidecar's. */
function registeredIds(body: unknown): string[] {
  const b = body as { ID?: unknown; Name?: unknown; Connect?: { SidecarService?: unknown } };
  const id = String(b.ID || b.Name);
  return b.Connect?.SidecarService ? [id, `${id}-sidecar-proxy`] : [id];
}
