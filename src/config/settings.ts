import type { LevelWithSilent } from 'pino';
import { logLevels } from '../log.js';
import { type HostPort, parseHostPort } from './host-port.js';
import { dnsHostname, dnsLabel } from '../dns-names.js';
import { type Result, err, ok } from '../result.js';

/** How xDS streams authenticate (`--xds-auth`); src/acl/xds-auth.ts enforces it. */
export type XdsAuthMode = 'token' | 'off';
export const xdsAuthModes: readonly XdsAuthMode[] = ['token', 'off'];

/** Where the server keeps its state (`--store`): embedded LMDB in the data dir, or etcd. */
export type StoreKind = 'lmdb' | 'etcd';
export const storeKinds: readonly StoreKind[] = ['lmdb', 'etcd'];

/** The validated configuration of `isthmus server`. */
export interface ServerConfig {
  readonly dataDir: string;
  readonly store: StoreKind;
  /** etcd's client endpoints (`--store etcd`). */
  readonly etcdEndpoints: readonly HostPort[];
  /** The key prefix on etcd; empty: `isthmus/<datacenter>/`. */
  readonly etcdPrefix: string;
  /** PEM files for TLS to etcd: its CA, and this server's client certificate and key. */
  readonly etcdCaFile: string;
  readonly etcdCertFile: string;
  readonly etcdKeyFile: string;
  /** etcd user (with `etcdPasswordFile`: a file holding the password, never a flag's value). */
  readonly etcdUsername: string;
  readonly etcdPasswordFile: string;
  readonly datacenter: string;
  readonly httpAddr: HostPort;
  readonly xdsAddr: HostPort;
  /** The peering port: gRPC over TLS for the servers of peered clusters (src/peering/server.ts). */
  readonly peeringAddr: HostPort;
  readonly logLevel: LevelWithSilent;
  readonly xdsMaxStreams: number;
  /** Largest xDS request message the server reads (bytes); larger ones get RESOURCE_EXHAUSTED. */
  readonly xdsMaxRequestBytes: number;
  /**
   * Streams one proxy token may hold open at once (admitted or waiting for their first request).
   */
  readonly xdsMaxStreamsPerToken: number;
  /** A stream with no valid first request within this long is closed (ms). */
  readonly xdsAdmissionTimeoutMs: number;
  /** Changes within this window (ms) become one rebuild of each affected proxy's config. */
  readonly coalesceMs: number;
  /** How long each phase of a CA root rotation lasts (ms) before the next begins. */
  readonly caRotationPhaseMs: number;
  /** How xDS streams authenticate: `token` (proxy tokens, src/acl) or `off` (local experiments). */
  readonly xdsAuth: XdsAuthMode;
  /** Required by HTTP writes and secret reads when set (src/api/auth.ts). */
  readonly httpToken: string | undefined;
  /** Allows a non-loopback HTTP address without a token. */
  readonly insecureHttp: boolean;
  /** DNS SANs of the xDS server certificate beyond `xds.isthmus.internal` (src/xds/tls.ts). */
  readonly xdsTlsSan: readonly string[];
  /** Serves the xDS port in plaintext (no TLS); refused off loopback unless the next is set. */
  readonly xdsPlaintext: boolean;
  /** Allows `xdsPlaintext` on a non-loopback xDS address. */
  readonly xdsPlaintextAllowRemote: boolean;
  /**
   * The peering address put into tokens (`ServerAddresses`); default: the bound peering address.
   */
  readonly advertiseAddr: HostPort | undefined;
  /**
   * This server's name among the servers of its cluster (`isthmus members`); empty: the host name
   * and the bound HTTP port. A federated server's TLS name is `<node>.server.<dc>.consul`
   * (`server-1` when empty).
   */
  readonly nodeName: string;
  /** How often each end of a peering stream sends a Heartbeat (ms). */
  readonly peeringHeartbeatMs: number;
  /** A peering stream silent this long is torn down, and the peering is no longer Healthy (ms). */
  readonly peeringHeartbeatTimeoutMs: number;
  /** Largest HTTP request body read (bytes); larger ones get 413. */
  readonly httpMaxBodyBytes: number;
  /** HTTP connections open at once at most; more are closed as they are accepted. */
  readonly httpMaxConnections: number;
  /**
   * WAN federation (docs/architecture.md §6c): the datacenter whose CA is the root and whose config
   * entries are global. Empty: not federated. Equal to `datacenter`: this is the primary.
   */
  readonly primaryDatacenter: string;
  /** A secondary's first contact: the primary's mesh gateways (WAN addresses). */
  readonly primaryGateways: readonly HostPort[];
  /** The federation port: gRPC over TLS, reached from other datacenters only through gateways. */
  readonly federationAddr: HostPort;
  /** A file holding the secret every federated server shares (it authenticates a Join). */
  readonly federationSecretFile: string;
}

/** A parsed value, or what is wrong with the raw one (the caller prefixes the setting's name). */
export type ParseResult<T> = Result<T, string>;

export interface SettingSpec<T> {
  /** Commander's attribute name for the flag (camelCase of the flag). */
  readonly key: string;
  readonly flag: string;
  readonly env: string;
  readonly fileKey: string;
  readonly valueName: string;
  readonly description: string;
  readonly defaultText: string;
  /** `defaultText` parsed (checked when the table is built). */
  readonly defaultValue: T;
  readonly parse: (raw: unknown) => ParseResult<T>;
  /** The flag may be given several times; the CLI joins the values with commas. */
  readonly repeatable?: true;
}

export type SettingsTable = { readonly [K in keyof ServerConfig]: SettingSpec<ServerConfig[K]> };

const maxStreamsLimit = 1_000_000;

const show = (raw: unknown): string => JSON.stringify(raw) ?? String(raw);

function parseNonEmptyString(raw: unknown): ParseResult<string> {
  return typeof raw === 'string' && raw !== ''
    ? ok(raw)
    : err(`${show(raw)} is not a non-empty string`);
}

function parseString(raw: unknown): ParseResult<string> {
  return typeof raw === 'string' ? ok(raw) : err(`${show(raw)} is not a string`);
}

function parseStoreKind(raw: unknown): ParseResult<StoreKind> {
  const kind = storeKinds.find((k) => k === raw);
  return kind ? ok(kind) : err(`${show(raw)} is not one of ${storeKinds.join(', ')}`);
}

function parseEndpoints(raw: unknown): ParseResult<readonly HostPort[]> {
  if (raw === '' || raw === undefined) return ok([]);
  const parts = typeof raw === 'string' ? raw.split(',').map((p) => p.trim()) : [];
  const addrs = parts.map((p) => parseHostPort(p));
  return parts.length > 0 && addrs.every((a) => a !== undefined && a.port > 0)
    ? ok(addrs as HostPort[])
    : err(`${show(raw)} is not a comma-separated list of HOST:PORT (port 1-65535)`);
}

function parseEtcdPrefix(raw: unknown): ParseResult<string> {
  if (raw === '') return ok('');
  return typeof raw === 'string' && /^[\x21-\x7e]{1,200}\/$/.test(raw)
    ? ok(raw)
    : err(`${show(raw)} is not a key prefix (visible ASCII ending in '/', e.g. isthmus/dc1/)`);
}

function parseDatacenter(raw: unknown): ParseResult<string> {
  if (typeof raw === 'string' && dnsLabel.test(raw)) return ok(raw);
  return err(
    `${show(raw)} is not a datacenter name (1-63 lowercase letters, digits or '-', starting and ending with a letter or digit)`,
  );
}

function parseAddr(raw: unknown): ParseResult<HostPort> {
  const addr = typeof raw === 'string' ? parseHostPort(raw) : undefined;
  return addr ? ok(addr) : err(`${show(raw)} is not HOST:PORT (port 0-65535)`);
}

function parseOptionalDialAddr(raw: unknown): ParseResult<HostPort | undefined> {
  if (raw === '' || raw === undefined) return ok(undefined);
  const addr = typeof raw === 'string' ? parseHostPort(raw) : undefined;
  return addr && addr.port > 0 ? ok(addr) : err(`${show(raw)} is not HOST:PORT (port 1-65535)`);
}

/** Letters, digits, `.`, `_` and `-`, up to 128: it is part of a store key and a table cell. */
function parseNodeName(raw: unknown): ParseResult<string> {
  if (raw === '' || raw === undefined) return ok('');
  return typeof raw === 'string' && /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(raw)
    ? ok(raw)
    : err(
        `${show(raw)} is not a server name (letters, digits, ".", "_", "-"; up to 128, starting with a letter or digit)`,
      );
}

function parseLogLevel(raw: unknown): ParseResult<LevelWithSilent> {
  const level = logLevels.find((l) => l === raw);
  return level ? ok(level) : err(`${show(raw)} is not one of ${logLevels.join(', ')}`);
}

/**
 * A parser of whole numbers from `min` to `max` (a number, or digits in a string); `unit` words the
 * error.
 */
function wholeNumber(
  min: number,
  max: number,
  unit: '' | 'milliseconds' = '',
): (raw: unknown) => ParseResult<number> {
  const what = unit ? `a whole number of ${unit}` : 'a whole number';
  return (raw) => {
    const n =
      typeof raw === 'number'
        ? raw
        : typeof raw === 'string' && /^\d+$/.test(raw)
          ? Number(raw)
          : NaN;
    if (Number.isInteger(n) && n >= min && n <= max) return ok(n);
    return err(`${show(raw)} is not ${what} from ${min} to ${max}`);
  };
}

const parseMaxStreams = wholeNumber(1, maxStreamsLimit);
const parseMaxRequestBytes = wholeNumber(64 * 1024, 64 * 1024 * 1024);
const parseMaxStreamsPerToken = wholeNumber(1, 10_000);
const parseAdmissionTimeoutMs = wholeNumber(10, 600_000, 'milliseconds');
const parseCoalesceMs = wholeNumber(0, 10_000, 'milliseconds');
const parseRotationPhaseMs = wholeNumber(10, 86_400_000, 'milliseconds');
const parseHeartbeatMs = wholeNumber(10, 3_600_000, 'milliseconds');
const parseMaxBodyBytes = wholeNumber(64 * 1024, 256 * 1024 * 1024);
const parseMaxConnections = wholeNumber(1, maxStreamsLimit);

function parseXdsAuth(raw: unknown): ParseResult<XdsAuthMode> {
  return xdsAuthModes.includes(raw as XdsAuthMode)
    ? ok(raw as XdsAuthMode)
    : err(`${show(raw)} is not one of ${xdsAuthModes.join(', ')}`);
}

const tokenPattern = /^[\x21-\x7e]{16,256}$/;

function parseHttpToken(raw: unknown): ParseResult<string | undefined> {
  if (raw === '' || raw === undefined) return ok(undefined);
  if (typeof raw === 'string' && tokenPattern.test(raw)) return ok(raw);
  return err('must be 16-256 visible ASCII characters (no spaces)');
}

function parseFlag(raw: unknown): ParseResult<boolean> {
  if (raw === true || raw === 'true' || raw === '1') return ok(true);
  if (raw === false || raw === 'false' || raw === '0') return ok(false);
  return err(`${show(raw)} is not true or false`);
}

/** A comma-separated list (or a config file's array) of DNS names, lowercased, without repeats. */
function parseDnsNames(raw: unknown): ParseResult<readonly string[]> {
  const items =
    typeof raw === 'string'
      ? raw.split(',').map((n) => n.trim())
      : Array.isArray(raw)
        ? raw.map((n) => (typeof n === 'string' ? n.trim() : n))
        : undefined;
  if (!items) return err(`${show(raw)} is not a comma-separated list of DNS names`);
  const names = items.filter((n) => n !== '');
  const bad = names.find((n) => typeof n !== 'string' || !dnsHostname.test(n));
  if (bad !== undefined)
    return err(`${show(bad)} is not a DNS name (dot-separated labels of letters, digits and '-')`);
  return ok([...new Set(names.map((n) => String(n).toLowerCase()))]);
}

function spec<T>(
  flag: string,
  valueName: string,
  defaultText: string,
  description: string,
  parse: (raw: unknown) => ParseResult<T>,
): SettingSpec<T> {
  const words = flag.replace(/^--/, '').split('-');
  const parsedDefault = parse(defaultText);
  if (!parsedDefault.ok)
    throw new Error(`${flag}: the default ${defaultText}: ${parsedDefault.error}`);
  return {
    key: words.map((w, i) => (i === 0 ? w : w[0]!.toUpperCase() + w.slice(1))).join(''),
    flag,
    env: `ISTHMUS_${words.join('_').toUpperCase()}`,
    fileKey: words.join('_'),
    valueName,
    description,
    defaultText,
    defaultValue: parsedDefault.value,
    parse,
  };
}

/** Every server setting: flag, environment variable, config-file key, default and parser. */
export const serverSettings: SettingsTable = {
  dataDir: spec(
    '--data-dir',
    'DIR',
    './data',
    'directory of the embedded store (and, with any store, of the CA root keys)',
    parseNonEmptyString,
  ),
  store: spec(
    '--store',
    'KIND',
    'lmdb',
    `where state lives: ${storeKinds.join(' (embedded, in --data-dir) or ')} (--etcd-endpoints)`,
    parseStoreKind,
  ),
  etcdEndpoints: spec(
    '--etcd-endpoints',
    'HOST:PORT,...',
    '',
    "etcd's client endpoints, for --store etcd",
    parseEndpoints,
  ),
  etcdPrefix: spec(
    '--etcd-prefix',
    'PREFIX',
    '',
    'key prefix on etcd, ending in / (default: isthmus/<datacenter>/)',
    parseEtcdPrefix,
  ),
  etcdCaFile: spec(
    '--etcd-ca-file',
    'PATH',
    '',
    "PEM of the CA that signs etcd's certificate (TLS to etcd)",
    parseString,
  ),
  etcdCertFile: spec(
    '--etcd-cert-file',
    'PATH',
    '',
    'PEM client certificate for etcd',
    parseString,
  ),
  etcdKeyFile: spec(
    '--etcd-key-file',
    'PATH',
    '',
    'PEM private key of --etcd-cert-file',
    parseString,
  ),
  etcdUsername: spec(
    '--etcd-username',
    'NAME',
    '',
    'etcd user (with --etcd-password-file)',
    parseString,
  ),
  etcdPasswordFile: spec(
    '--etcd-password-file',
    'PATH',
    '',
    "file holding the etcd user's password",
    parseString,
  ),
  datacenter: spec(
    '--datacenter',
    'NAME',
    'dc1',
    "name of this cluster's datacenter",
    parseDatacenter,
  ),
  httpAddr: spec(
    '--http-addr',
    'HOST:PORT',
    '127.0.0.1:8500',
    'HTTP API listen address',
    parseAddr,
  ),
  xdsAddr: spec(
    '--xds-addr',
    'HOST:PORT',
    '127.0.0.1:8502',
    'xDS (gRPC) listen address',
    parseAddr,
  ),
  peeringAddr: spec(
    '--peering-addr',
    'HOST:PORT',
    '127.0.0.1:8503',
    'peering (gRPC over TLS) listen address',
    parseAddr,
  ),
  logLevel: spec(
    '--log-level',
    'LEVEL',
    'info',
    `log level: ${logLevels.join('|')}`,
    parseLogLevel,
  ),
  xdsMaxStreams: spec(
    '--xds-max-streams',
    'N',
    '10000',
    'xDS streams accepted at most',
    parseMaxStreams,
  ),
  xdsMaxRequestBytes: spec(
    '--xds-max-request-bytes',
    'BYTES',
    '4194304',
    'largest xDS request message read (a Delta reconnect naming 10,000 resources of 100-byte names is 2.3 MB)',
    parseMaxRequestBytes,
  ),
  xdsMaxStreamsPerToken: spec(
    '--xds-max-streams-per-token',
    'N',
    '8',
    'xDS streams one proxy token may hold open at once',
    parseMaxStreamsPerToken,
  ),
  xdsAdmissionTimeoutMs: spec(
    '--xds-admission-timeout-ms',
    'MS',
    '10000',
    'an xDS stream that sends no valid first request within this long is closed',
    parseAdmissionTimeoutMs,
  ),
  coalesceMs: spec(
    '--coalesce-ms',
    'MS',
    '100',
    'window in which catalog, config and CA changes are coalesced into one rebuild per proxy',
    parseCoalesceMs,
  ),
  caRotationPhaseMs: spec(
    '--ca-rotation-phase-ms',
    'MS',
    '60000',
    'length of each CA root rotation phase (trust both roots, re-issue leaves, retire the old root)',
    parseRotationPhaseMs,
  ),
  xdsAuth: spec(
    '--xds-auth',
    'MODE',
    'token',
    'xDS stream authentication: token (x-isthmus-token proxy tokens) | off (any client may act as any proxy; local experiments only)',
    parseXdsAuth,
  ),
  httpToken: spec(
    '--http-token',
    'TOKEN',
    '',
    'token that HTTP API writes and peering/secret reads must carry (Authorization: Bearer or X-Isthmus-Token)',
    parseHttpToken,
  ),
  // No value name: a boolean flag (`--insecure-http`), "true"/"false" in env and file.
  insecureHttp: spec(
    '--insecure-http',
    '',
    'false',
    'allow a non-loopback --http-addr without --http-token',
    parseFlag,
  ),
  xdsTlsSan: {
    ...spec(
      '--xds-tls-san',
      'NAMES',
      '',
      'extra DNS names on the xDS server certificate, comma-separated or repeated (xds.isthmus.internal is always there)',
      parseDnsNames,
    ),
    repeatable: true,
  },
  xdsPlaintext: spec(
    '--xds-plaintext',
    '',
    'false',
    'serve the xDS port without TLS (proxy keys and tokens travel in clear; logged as a warning)',
    parseFlag,
  ),
  xdsPlaintextAllowRemote: spec(
    '--xds-plaintext-allow-remote',
    '',
    'false',
    'allow --xds-plaintext on a non-loopback --xds-addr',
    parseFlag,
  ),
  advertiseAddr: spec(
    '--advertise-addr',
    'HOST:PORT',
    '',
    'peering address other clusters dial, put into peering tokens (default: the bound --peering-addr)',
    parseOptionalDialAddr,
  ),
  nodeName: spec(
    '--node-name',
    'NAME',
    '',
    "this server's name among its cluster's servers (default: host name and HTTP port)",
    parseNodeName,
  ),
  peeringHeartbeatMs: spec(
    '--peering-heartbeat-ms',
    'MS',
    '15000',
    'how often each end of a peering stream sends a heartbeat',
    parseHeartbeatMs,
  ),
  peeringHeartbeatTimeoutMs: spec(
    '--peering-heartbeat-timeout-ms',
    'MS',
    '120000',
    'a peering stream silent this long is torn down and the peering reported unhealthy',
    parseHeartbeatMs,
  ),
  httpMaxBodyBytes: spec(
    '--http-max-body-bytes',
    'BYTES',
    '4194304',
    'largest HTTP request body read (an exported-services entry of 5,000 services is about 2 MB); larger ones get 413',
    parseMaxBodyBytes,
  ),
  httpMaxConnections: spec(
    '--http-max-connections',
    'N',
    '1024',
    'HTTP connections open at once at most; more are closed as they are accepted',
    parseMaxConnections,
  ),
  primaryDatacenter: spec(
    '--primary-datacenter',
    'NAME',
    '',
    'WAN federation: the primary datacenter (its CA is the root, its config entries are global); the same on every server of every datacenter',
    parseOptionalDatacenter,
  ),
  primaryGateways: spec(
    '--primary-gateways',
    'HOST:PORT,...',
    '',
    "WAN federation, secondaries: the primary's mesh gateways (WAN addresses), dialed until a local gateway exposes servers",
    parseEndpoints,
  ),
  federationAddr: spec(
    '--federation-addr',
    'HOST:PORT',
    '127.0.0.1:8504',
    'WAN federation (gRPC over TLS) listen address; other datacenters reach it only through mesh gateways',
    parseAddr,
  ),
  federationSecretFile: spec(
    '--federation-secret-file',
    'PATH',
    '',
    'WAN federation: file holding the secret all federated servers share (16+ characters; authenticates a secondary joining)',
    parseString,
  ),
};

/** Empty, or a datacenter name. */
function parseOptionalDatacenter(raw: unknown): ParseResult<string> {
  return raw === '' || raw === undefined ? ok('') : parseDatacenter(raw);
}

export const settingKeys = Object.keys(serverSettings) as (keyof ServerConfig)[];
