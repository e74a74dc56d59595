import { X509Certificate } from 'node:crypto';
import { Argument, type Command, InvalidArgumentError } from 'commander';
import { unreachableHeader } from '../api/cluster-fanout.js';
import type { ProxyConfigJson, ProxyJson } from '../api/xds-routes.js';
import { type ConfigType, configTypeOf, configTypes } from '../xds/types.js';
import { apiClientFor, withApiOptions } from './api-options.js';
import { print, printFields, printTable } from './output.js';

/**
 * `isthmus proxy-status [ID]` and `isthmus proxy-config ID TYPE` (issue 6), after `istioctl
 * proxy-status` / `proxy-config`: what each connected proxy holds compared with what this server
 * wants it to hold, and that config as tables or Envoy JSON (private keys redacted by the server).
 */
export function registerProxyCommands(program: Command): void {
  registerProxyStatus(program);
  registerProxyConfig(program);
}

function registerProxyStatus(program: Command): void {
  withApiOptions(
    program.command('proxy-status').argument('[ID]', 'a proxy ID: show its resources one by one'),
  )
    .description(
      'sync status of connected proxies per xDS type (SYNCED, NOT SENT, STALE, NACKED; "-" for a type with no resources)',
    )
    .addHelpText(
      'after',
      '\nSYNCED: the proxy ACKed what the server wants it to hold. NOT SENT: the proxy asked for it but the\n' +
        "newest version waits (behind an earlier type's ACK). STALE: sent, not ACKed yet, or held but no longer wanted.\n" +
        'NACKED: the proxy rejected the version it should hold; LAST NACK shows why.\n' +
        'VERSION: the start of the content version of the config the proxy should hold (a hash: equal\n' +
        'versions, equal config, on every server). With an ID: each resource, its version and any NACK.',
    )
    .action(async (id: string | undefined, _opts: unknown, cmd: Command) => {
      const { client, format } = apiClientFor(cmd);
      if (id !== undefined) {
        const proxy = await client.get<ProxyJson>(`/v1/xds/proxies/${encodeURIComponent(id)}`);
        return format === 'json' ? print(proxy) : printProxy(proxy);
      }
      const { body: proxies, headers } =
        await client.getWithHeaders<ProxyJson[]>('/v1/xds/proxies');
      if (format === 'json') return print(proxies);
      const unreachable = headers.get(unreachableHeader);
      printStatusTable(proxies, unreachable !== null);
      // The table lacks their proxies: say so rather than show a shorter list as complete.
      if (unreachable)
        console.error(
          `isthmus: no answer from server(s) ${unreachable}; their proxies are not listed`,
        );
    });
}

function registerProxyConfig(program: Command): void {
  withApiOptions(
    program
      .command('proxy-config')
      .argument('<ID>', 'the proxy ID (as `isthmus proxy-status` lists it)')
      .addArgument(
        new Argument(
          '<TYPE>',
          `which resources: ${Object.keys(configTypes).join(', ')} (or cds, lds, eds, rds, sds)`,
        ).argParser(parseType),
      ),
  )
    .description(
      'the config this server wants a connected proxy to hold, by type; --format json gives the Envoy JSON (private keys "[redacted]")',
    )
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  isthmus proxy-config web-sidecar-proxy clusters        NAME, TYPE, SNI, STATUS\n' +
        '  isthmus proxy-config web-sidecar-proxy listeners       NAME, ADDRESS:PORT, FILTER CHAINS, STATUS\n' +
        '  isthmus proxy-config web-sidecar-proxy endpoints       CLUSTER, ENDPOINT, HEALTH\n' +
        '  isthmus proxy-config web-sidecar-proxy routes          NAME, VIRTUAL HOST, DOMAINS, ROUTES\n' +
        '  isthmus proxy-config web-sidecar-proxy secrets         certificates and CA bundles; keys are never shown\n' +
        '  isthmus proxy-config gw-1 clusters --format json       the Envoy JSON of the resources',
    )
    .action(async (id: string, type: ConfigType, _opts: unknown, cmd: Command) => {
      const { client, format } = apiClientFor(cmd);
      const config = await client.get<ProxyConfigJson>(
        `/v1/xds/proxies/${encodeURIComponent(id)}/config/${type}`,
      );
      if (format === 'json') return print(config.Resources.map((r) => r.Resource));
      if (config.Resources.length === 0) return print(`No ${type} for ${config.ID}.`);
      const table = configTables[type](config.Resources);
      printTable(table.headers, table.rows);
    });
}

function parseType(value: string): ConfigType {
  const type = configTypeOf(value);
  if (!type)
    throw new InvalidArgumentError(
      `${JSON.stringify(value)} is not one of ${Object.keys(configTypes).join(', ')}`,
    );
  return type;
}

const typeColumns = ['CDS', 'LDS', 'EDS', 'RDS', 'SDS'] as const;

/** Status words of the CLI: CSDS's, with ERROR shown as what it means to a user. */
function statusWord(status: string | undefined): string {
  switch (status) {
    case 'SYNCED':
    case 'STALE':
      return status;
    case 'NOT_SENT':
      return 'NOT SENT';
    case 'NOT_REQUESTED':
      return 'NOT REQUESTED';
    case 'ERROR':
      return 'NACKED';
    default:
      return '-';
  }
}

const shortVersion = (v: string | undefined): string => (v ? v.slice(0, 8) : '-');
const oneLine = (s: string): string => s.replace(/\s+/g, ' ').trim();

function lastNack(p: ProxyJson): string {
  return p.LastNack ? `${p.LastNack.Type}: ${oneLine(p.LastNack.Message)}` : '-';
}

/**
 * The SERVER column appears when the proxies are spread over several servers of the cluster (or one
 * did not answer): a single server's table stays as it was.
 */
function printStatusTable(proxies: readonly ProxyJson[], partial: boolean): void {
  if (proxies.length === 0) return print('No connected proxies.');
  const sorted = [...proxies].sort((a, b) =>
    a.ID < b.ID ? -1 : a.ID > b.ID ? 1 : (a.Server ?? '') < (b.Server ?? '') ? -1 : 1,
  );
  const servers = partial || new Set(proxies.map((p) => p.Server)).size > 1;
  printTable(
    ['NAME', ...(servers ? ['SERVER'] : []), 'KIND', ...typeColumns, 'VERSION', 'LAST NACK'],
    sorted.map((p) => [
      p.ID,
      ...(servers ? [p.Server ?? '-'] : []),
      p.Kind ?? 'unknown',
      ...typeColumns.map((t) => statusWord(p.Types[t]?.status)),
      shortVersion(p.Version),
      lastNack(p),
    ]),
  );
}

function printProxy(p: ProxyJson): void {
  const rows: [string, string][] = [
    ['Proxy', p.ID],
    ['Kind', p.Kind],
    ...(p.Server ? ([['Server', p.Server]] as [string, string][]) : []),
    ['API', p.API],
    ['Connected', p.ConnectedAt],
    ['Version', p.Version || '-'],
    ['Last NACK', p.LastNack ? `${lastNack(p)} (at ${p.LastNack.At})` : '-'],
  ];
  printFields(rows);
  print('');
  if (p.Resources.length === 0) return print('No resources.');
  printTable(
    ['TYPE', 'NAME', 'STATUS', 'VERSION', 'ACKED', 'NACK'],
    p.Resources.map((r) => [
      r.Type,
      r.Name,
      statusWord(r.Status),
      shortVersion(r.Version),
      shortVersion(r.AckedVersion),
      r.Error ? oneLine(r.Error) : '-',
    ]),
  );
}

// Envoy JSON, read defensively: every field may be absent.
// biome-ignore lint/suspicious/noExplicitAny: Envoy JSON
type Json = any;
type Resources = ProxyConfigJson['Resources'];
interface Table {
  readonly headers: readonly string[];
  readonly rows: readonly (readonly string[])[];
}

const configTables: Readonly<Record<ConfigType, (resources: Resources) => Table>> = {
  clusters: (resources) => ({
    headers: ['NAME', 'TYPE', 'SNI', 'STATUS'],
    rows: resources.map((r) => {
      const c = r.Resource as Json;
      const type = c.type ?? c.clusterType?.name ?? 'STATIC';
      return [
        r.Name,
        String(type),
        c.transportSocket?.typedConfig?.sni || '-',
        statusWord(r.Status),
      ];
    }),
  }),
  listeners: (resources) => ({
    headers: ['NAME', 'ADDRESS:PORT', 'FILTER CHAINS', 'STATUS'],
    rows: resources.map((r) => {
      const l = r.Resource as Json;
      const chains = (l.filterChains?.length ?? 0) + (l.defaultFilterChain ? 1 : 0);
      return [r.Name, socketAddress(l.address), String(chains), statusWord(r.Status)];
    }),
  }),
  endpoints: (resources) => ({
    headers: ['CLUSTER', 'ENDPOINT', 'HEALTH'],
    rows: resources.flatMap((r) => {
      const lbs: Json[] = ((r.Resource as Json).endpoints ?? []).flatMap(
        (l: Json) => l.lbEndpoints ?? [],
      );
      if (lbs.length === 0) return [[r.Name, '-', '-']];
      return lbs.map((lb) => [
        r.Name,
        socketAddress(lb.endpoint?.address),
        lb.healthStatus ?? 'UNKNOWN',
      ]);
    }),
  }),
  routes: (resources) => ({
    headers: ['NAME', 'VIRTUAL HOST', 'DOMAINS', 'ROUTES'],
    rows: resources.flatMap((r) => {
      const hosts: Json[] = (r.Resource as Json).virtualHosts ?? [];
      if (hosts.length === 0) return [[r.Name, '-', '-', '-']];
      return hosts.map((h) => [
        r.Name,
        h.name ?? '-',
        (h.domains ?? []).join(',') || '-',
        (h.routes ?? []).map(routeSummary).join(', ') || '-',
      ]);
    }),
  }),
  secrets: (resources) => ({
    headers: ['NAME', 'KIND', 'SUBJECT / URI SAN', 'NOT AFTER', 'KEY'],
    rows: resources.map((r) => secretRow(r.Name, r.Resource as Json)),
  }),
};

function socketAddress(address: Json): string {
  const sa = address?.socketAddress;
  if (sa) return `${sa.address ?? ''}:${sa.portValue ?? sa.namedPort ?? ''}`;
  if (address?.pipe) return `unix:${address.pipe.path}`;
  return '-';
}

/** `prefix /api → cluster` (weighted: each cluster with its weight). */
function routeSummary(route: Json): string {
  const m = route.match ?? {};
  const match =
    m.prefix !== undefined
      ? `prefix ${m.prefix}`
      : m.path !== undefined
        ? `path ${m.path}`
        : m.safeRegex
          ? `regex ${m.safeRegex.regex}`
          : 'any';
  const a = route.route ?? {};
  const target =
    a.cluster ??
    (a.weightedClusters?.clusters ?? [])
      .map((c: Json) => `${c.name}:${c.weight ?? ''}`)
      .join('+') ??
    '';
  return `${match} → ${target || (route.directResponse ? `direct ${route.directResponse.status}` : '-')}`;
}

/** One row of `proxy-config secrets`: NAME, KIND, SUBJECT / URI SAN, NOT AFTER, KEY. */
export function secretRow(name: string, s: Json): string[] {
  if (s.tlsCertificate) {
    const [leaf] = certificates(s.tlsCertificate.certificateChain);
    const san = leaf?.subjectAltName
      ?.split(', ')
      .find((x) => x.startsWith('URI:'))
      ?.slice(4);
    return [
      name,
      'certificate',
      san ?? leaf?.subject.replace(/\n/g, ',') ?? '-',
      notAfter(leaf),
      s.tlsCertificate.privateKey === undefined
        ? '-'
        : `key: ${String(s.tlsCertificate.privateKey)}`,
    ];
  }
  const validation = s.validationContext;
  if (validation) {
    // A SPIFFE validator (an exported sidecar's or gateway's inbound trust) holds a bundle per
    // trust domain.
    const trustDomains: Json[] = validation.customValidatorConfig?.typedConfig?.trustDomains ?? [];
    const roots =
      trustDomains.length > 0
        ? trustDomains.flatMap((t) => certificates(t.trustBundle))
        : certificates(validation.trustedCa);
    const first = roots[0]?.subject.split('\n').find((x) => x.startsWith('CN='));
    const subject =
      trustDomains.length > 0
        ? `SPIFFE: ${trustDomains.map((t) => String(t.name)).join(', ')}`
        : first
          ? `${first}${roots.length > 1 ? ` (+${roots.length - 1} more)` : ''}`
          : '-';
    const earliest = roots.reduce<X509Certificate | undefined>(
      (a, c) => (!a || Date.parse(c.validTo) < Date.parse(a.validTo) ? c : a),
      undefined,
    );
    return [name, 'validation', subject, notAfter(earliest), '-'];
  }
  return [
    name,
    s.genericSecret ? 'generic' : s.sessionTicketKeys ? 'session ticket keys' : '-',
    '-',
    '-',
    s.genericSecret || s.sessionTicketKeys ? 'key: [redacted]' : '-',
  ];
}

/** The certificates of an inline PEM DataSource (a file or env source is not shown). */
function certificates(source: Json): X509Certificate[] {
  const pem: string =
    source?.inlineString ??
    (source?.inlineBytes ? Buffer.from(source.inlineBytes, 'base64').toString('utf8') : '');
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.flatMap((b) => {
    try {
      return [new X509Certificate(b)];
    } catch {
      return [];
    }
  });
}

function notAfter(cert: X509Certificate | undefined): string {
  return cert ? new Date(cert.validTo).toISOString().replace(/\.\d{3}Z$/, 'Z') : '-';
}
