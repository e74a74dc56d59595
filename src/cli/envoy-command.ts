import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { type Command, Option } from 'commander';
import { ApiClient } from '../api/client.js';
import { fetchXdsTls } from '../api/xds-tls-client.js';
import { type HostPort, formatHostPort, parseHostPort } from '../config/host-port.js';
import { type BootstrapOptions, type BootstrapTls, buildBootstrap } from '../mesh/bootstrap.js';
import { xdsServerName } from '../mesh/names.js';
import { dnsHostname, dnsLabel } from '../dns-names.js';
import { IsthmusError } from '../errors.js';

/** `isthmus envoy bootstrap`: prints the Envoy bootstrap of a sidecar or mesh gateway. */
export function registerEnvoyCommand(program: Command): void {
  const envoy = program.command('envoy').description('Envoy helpers');
  envoy
    .command('bootstrap')
    .description(
      'print an Envoy v3 bootstrap (JSON) for a sidecar, or a mesh gateway with --gateway mesh',
    )
    .requiredOption('--proxy-id <ID>', 'registered proxy service ID (becomes node.id)')
    .addOption(
      new Option('--gateway <KIND>', 'bootstrap a gateway instead of a sidecar').choices(['mesh']),
    )
    .addOption(
      new Option(
        '--admin-bind <IP:PORT>',
        'Envoy admin listener (an IP, as Envoy binds it)',
      ).default('127.0.0.1:19000'),
    )
    .addOption(
      new Option(
        '--xds-addr <HOST:PORT>',
        'isthmus xDS (gRPC) address Envoy dials; several servers of a cluster: repeat it or give a comma list (Envoy moves to another when its server dies)',
      )
        .env('ISTHMUS_XDS_ADDR')
        .default('127.0.0.1:8502')
        // Repeatable: the first use replaces the default, each further one adds to the list.
        .argParser((value: string, previous: string | string[]) =>
          Array.isArray(previous) ? [...previous, value] : [value],
        ),
    )
    .addOption(
      new Option('--token <TOKEN>', 'proxy token sent as x-isthmus-token on the xDS stream').env(
        'ISTHMUS_PROXY_TOKEN',
      ),
    )
    .option('--cluster <NAME>', 'node.cluster (default: the proxy ID)')
    .option('--datacenter <NAME>', 'datacenter of the proxy (node metadata)', 'dc1')
    .addOption(
      new Option(
        '--http-addr <HOST:PORT>',
        'isthmus HTTP API asked how to verify the xDS port (GET /v1/xds/server), unless --xds-ca-file or --xds-plaintext',
      )
        .env('ISTHMUS_HTTP_ADDR')
        .default('127.0.0.1:8500'),
    )
    .addOption(
      new Option(
        '--xds-ca-file <PATH>',
        'PEM roots the xDS server certificate must chain to (instead of asking the HTTP API)',
      ).env('ISTHMUS_XDS_CA_FILE'),
    )
    .addOption(
      new Option(
        '--xds-server-name <NAME>',
        `name the xDS server certificate must carry (SNI and SAN match; default ${xdsServerName})`,
      ).env('ISTHMUS_XDS_SERVER_NAME'),
    )
    .option(
      '--xds-plaintext',
      'write a plaintext xDS cluster, for a server started with --xds-plaintext',
    )
    .action(async (_opts: unknown, cmd: Command) => {
      const options = bootstrapOptions(cmd);
      const bootstrap = buildBootstrap({ ...options, tls: await xdsTls(cmd) });
      // Holds the token when one is given: Envoy needs it there. It goes to stdout only, never a
      // log.
      process.stdout.write(`${JSON.stringify(bootstrap, null, 2)}\n`);
    });
}

interface EnvoyBootstrapFlags {
  readonly proxyId: string;
  readonly gateway?: 'mesh';
  readonly adminBind: string;
  readonly xdsAddr: string | readonly string[];
  readonly token?: string;
  readonly cluster?: string;
  readonly datacenter: string;
  readonly httpAddr: string;
  readonly xdsCaFile?: string;
  readonly xdsServerName?: string;
  readonly xdsPlaintext?: true;
}

// The same rules the server applies to proxy IDs (acl proxy tokens) and datacenter names (config).
const proxyIdPattern = /^[^\s\p{Cc}]{1,256}$/u;
// gRPC ASCII metadata values are visible ASCII; the server trims, so spaces could never match.
const tokenPattern = /^[\x21-\x7e]+$/;

/** Flags → builder options; a bad flag is a usage error (exit 2, one line via main.ts). */
function bootstrapOptions(cmd: Command): Omit<BootstrapOptions, 'tls'> {
  const flags = cmd.opts<EnvoyBootstrapFlags>();
  const usage = (message: string): never =>
    cmd.error(message, { exitCode: 2, code: 'isthmus.usage' });
  if (!proxyIdPattern.test(flags.proxyId))
    usage('--proxy-id must be 1-256 characters without spaces or control characters');
  if (flags.cluster !== undefined && !proxyIdPattern.test(flags.cluster))
    usage('--cluster must be 1-256 characters without spaces or control characters');
  if (!dnsLabel.test(flags.datacenter))
    usage(
      `--datacenter: ${JSON.stringify(flags.datacenter)} must be lowercase letters, digits and hyphens (at most 63)`,
    );
  // Never echo the token: a malformed one may still be most of a secret.
  if (flags.token !== undefined && !tokenPattern.test(flags.token))
    usage('--token must be non-empty visible ASCII without spaces');
  return {
    proxyId: flags.proxyId,
    kind: flags.gateway === 'mesh' ? 'mesh-gateway' : 'connect-proxy',
    cluster: flags.cluster,
    datacenter: flags.datacenter,
    xdsAddr: dialAddresses(flags.xdsAddr, usage),
    adminAddr: adminAddress(flags.adminBind, usage),
    token: flags.token,
  };
}

function hostPortOrUsage(flag: string, text: string, usage: (message: string) => never): HostPort {
  return (
    parseHostPort(text) ?? usage(`${flag}: ${JSON.stringify(text)} is not HOST:PORT or [IPv6]:PORT`)
  );
}

/**
 * Envoy binds its admin listener to a SocketAddress, which must name an IP: a host name passes our
 * parser but `envoy --mode validate` refuses the bootstrap ("malformed IP address: localhost").
 */
function adminAddress(text: string, usage: (message: string) => never): HostPort {
  const addr = hostPortOrUsage('--admin-bind', text, usage);
  if (isIP(addr.host) === 0)
    usage(
      `--admin-bind: ${JSON.stringify(text)} must be an IP address and port, not a host name (Envoy binds its admin listener to an IP; e.g. 127.0.0.1:${addr.port})`,
    );
  return addr;
}

/** Every `--xds-addr` (each possibly a comma list), in order, each once. */
function dialAddresses(
  flag: string | readonly string[],
  usage: (message: string) => never,
): HostPort[] {
  const texts = (typeof flag === 'string' ? [flag] : flag).flatMap((text) =>
    text.split(',').map((part) => part.trim()),
  );
  const addrs: HostPort[] = [];
  for (const text of texts) {
    if (text === '') usage('--xds-addr: an empty address in the list; give HOST:PORT[,HOST:PORT]');
    const addr = dialAddress(text, usage);
    if (addrs.some((a) => formatHostPort(a) === formatHostPort(addr)))
      usage(`--xds-addr: ${JSON.stringify(text)} is listed twice; give each server once`);
    addrs.push(addr);
  }
  return addrs;
}

/** Envoy connects to this address, so neither a wildcard host nor port 0 makes sense. */
function dialAddress(text: string, usage: (message: string) => never): HostPort {
  const addr = hostPortOrUsage('--xds-addr', text, usage);
  if (addr.port === 0)
    usage(`--xds-addr: ${JSON.stringify(text)} needs a port Envoy can dial, not 0`);
  if (addr.host === '0.0.0.0' || addr.host === '::')
    usage(
      `--xds-addr: ${JSON.stringify(text)} is a wildcard listen address; give one Envoy can dial (env ISTHMUS_XDS_ADDR is also the server's listen setting)`,
    );
  return addr;
}

/**
 * How Envoy verifies the xDS server: from `--xds-ca-file`, else asked of the server's HTTP API.
 * Plaintext only with `--xds-plaintext`: a server that answers "plaintext" is refused without it,
 * since an answer over plain HTTP must not downgrade what Envoy sends its token over.
 */
async function xdsTls(cmd: Command): Promise<BootstrapTls | undefined> {
  const flags = cmd.opts<EnvoyBootstrapFlags>();
  const usage = (message: string): never =>
    cmd.error(message, { exitCode: 2, code: 'isthmus.usage' });
  const serverName = flags.xdsServerName;
  if (serverName !== undefined && !dnsHostname.test(serverName))
    usage(`--xds-server-name: ${JSON.stringify(serverName)} is not a DNS name`);
  if (flags.xdsPlaintext) {
    if (flags.xdsCaFile !== undefined || serverName !== undefined)
      usage('--xds-plaintext writes no TLS: drop --xds-ca-file and --xds-server-name, or it');
    return undefined;
  }
  if (flags.xdsCaFile !== undefined)
    return { caPem: caFile(flags.xdsCaFile, usage), serverName: serverName ?? xdsServerName };
  const http = parseHostPort(flags.httpAddr.replace(/^http:\/\//, ''));
  if (!http) return usage(`--http-addr: ${JSON.stringify(flags.httpAddr)} is not HOST:PORT`);
  const base = `http://${formatHostPort(http)}`;
  const asked = await fetchXdsTls(new ApiClient(base)).catch((err: unknown) => {
    const e = IsthmusError.from(err);
    throw new IsthmusError(
      e.code,
      `${e.message}; give the roots with --xds-ca-file instead, or --http-addr where the server's API is`,
    );
  });
  if (!asked)
    throw new IsthmusError(
      'failed_precondition',
      `the server at ${base} serves xDS in plaintext (--xds-plaintext); pass --xds-plaintext to write a plaintext bootstrap`,
    );
  return serverName === undefined ? asked : { ...asked, serverName };
}

/** The PEM CA certificates in `path`; a missing file or one without a CA is a usage error. */
function caFile(path: string, usage: (message: string) => never): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    return usage(`--xds-ca-file: cannot read ${JSON.stringify(path)}: ${(err as Error).message}`);
  }
  const pems = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  const cas = pems.filter((pem) => {
    try {
      return new X509Certificate(pem).ca;
    } catch {
      return false;
    }
  });
  if (cas.length === 0 || cas.length !== pems.length)
    usage(
      `--xds-ca-file: ${JSON.stringify(path)} must hold PEM CA certificates only (the cluster's roots: isthmus ca roots --pem)`,
    );
  return `${cas.join('\n')}\n`;
}
