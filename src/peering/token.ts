import { X509Certificate } from 'node:crypto';
import { parseHostPort } from '../config/host-port.js';
import { dnsHostname } from '../dns-names.js';
import { type Result, err, ok } from '../result.js';

/**
 * The peering token (docs/architecture.md §6 "Token"): standard base64 of JSON with Consul's field
 * names, so a token reads the same as Consul's `peering generate-token` output. It carries the
 * acceptor's CA roots, where and under which TLS name to reach it, and the one-time establishment
 * secret.
 */
export interface PeeringToken {
  /** The acceptor's CA root certificates (PEM). Never empty: there is no plaintext fallback. */
  readonly CA: readonly string[];
  /** Where the acceptor's peering port is reachable (`host:port`). */
  readonly ServerAddresses: readonly string[];
  /** Addresses the operator gave (`ServerExternalAddresses`); when set, the dialer uses them. */
  readonly ManualServerAddresses: readonly string[];
  /** The acceptor's peering server TLS name, `server.<dc>.peering.<td>`. */
  readonly ServerName: string;
  /** The acceptor's ID for this peering. */
  readonly PeerID: string;
  /** One-time: consumed by ExchangeSecret. */
  readonly EstablishmentSecret: string;
  readonly Remote: { readonly Partition: string; readonly Datacenter: string };
}

export type ParsedToken = Result<PeeringToken, string>;

/** The addresses a dialer tries, in order: the operator's, else the acceptor's own. */
export function dialAddressesOf(token: PeeringToken): readonly string[] {
  return token.ManualServerAddresses.length > 0
    ? token.ManualServerAddresses
    : token.ServerAddresses;
}

export function encodeToken(token: PeeringToken): string {
  const json: PeeringToken = {
    CA: token.CA,
    ServerAddresses: token.ServerAddresses,
    ManualServerAddresses: token.ManualServerAddresses,
    ServerName: token.ServerName,
    PeerID: token.PeerID,
    EstablishmentSecret: token.EstablishmentSecret,
    Remote: { Partition: token.Remote.Partition, Datacenter: token.Remote.Datacenter },
  };
  return Buffer.from(JSON.stringify(json), 'utf8').toString('base64');
}

const base64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const maxTokenChars = 256 * 1024;

const fail = (problem: string) => err(`invalid peering token: ${problem}`);

/**
 * Untrusted input (pasted by an operator) → a token, or every problem found, in one line. Never
 * throws. The CA certificates must parse as X.509; addresses must be `host:port` with a port ≥ 1.
 */
export function parseToken(text: unknown): ParsedToken {
  if (typeof text !== 'string' || text.trim() === '')
    return fail('empty (expected the base64 text printed by `isthmus peering generate-token`)');
  if (text.length > maxTokenChars) return fail(`longer than ${maxTokenChars} characters`);
  const compact = text.replace(/\s+/g, '');
  if (!base64.test(compact)) return fail('not base64 (standard alphabet with padding)');
  const decoded = decodeJson(Buffer.from(compact, 'base64'));
  if (!decoded.ok) return decoded;
  const obj = decoded.value;
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj))
    return fail('the decoded JSON is not an object');
  const problems = validateToken(obj as Record<string, unknown>);
  if (problems.length > 0) return fail(problems.join('; '));
  return ok(tokenOf(obj as Record<string, unknown>));
}

function decodeJson(bytes: Buffer): Result<unknown, string> {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return fail('not JSON (the decoded bytes are not UTF-8 text)');
  }
  try {
    return ok(JSON.parse(text) as unknown);
  } catch {
    return fail('not JSON (the base64 decodes to something else)');
  }
}

function validateToken(obj: Record<string, unknown>): string[] {
  const problems: string[] = [];
  problems.push(...caProblems(obj.CA));
  const server = addressProblems(obj, 'ServerAddresses');
  const manual = addressProblems(obj, 'ManualServerAddresses');
  problems.push(...server, ...manual);
  if (
    server.length === 0 &&
    manual.length === 0 &&
    strings(obj.ServerAddresses).length === 0 &&
    strings(obj.ManualServerAddresses).length === 0
  ) {
    problems.push('ServerAddresses: missing (at least one host:port of the acceptor)');
  }
  const serverName = obj.ServerName;
  if (serverName === undefined || serverName === '') problems.push('ServerName: missing');
  else if (typeof serverName !== 'string' || !dnsHostname.test(serverName))
    problems.push(`ServerName: ${show(serverName)} is not a DNS name`);
  problems.push(
    ...requiredString(obj, 'PeerID', 128),
    ...requiredString(obj, 'EstablishmentSecret', 512),
  );
  problems.push(...remoteProblems(obj.Remote));
  return problems;
}

function caProblems(ca: unknown): string[] {
  if (ca === undefined || ca === null || (Array.isArray(ca) && ca.length === 0)) {
    return ['CA: missing (no CA certificates: isthmus never peers without TLS)'];
  }
  if (!Array.isArray(ca)) return ['CA: must be a JSON array of PEM certificates'];
  const problems: string[] = [];
  ca.forEach((pem: unknown, i) => {
    if (typeof pem !== 'string' || !pem.includes('-----BEGIN CERTIFICATE-----')) {
      problems.push(`CA[${i}]: not a PEM certificate`);
      return;
    }
    try {
      new X509Certificate(pem);
    } catch {
      problems.push(`CA[${i}]: does not parse as an X.509 certificate`);
    }
  });
  return problems;
}

function addressProblems(
  obj: Record<string, unknown>,
  field: 'ServerAddresses' | 'ManualServerAddresses',
): string[] {
  const value = obj[field];
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) return [`${field}: must be a JSON array of host:port strings`];
  const problems: string[] = [];
  value.forEach((addr: unknown, i) => {
    const hp = typeof addr === 'string' ? parseHostPort(addr) : undefined;
    if (!hp || hp.port === 0)
      problems.push(`${field}[${i}]: ${show(addr)} is not host:port (port 1-65535)`);
  });
  return problems;
}

function requiredString(obj: Record<string, unknown>, field: string, maxLength: number): string[] {
  const value = obj[field];
  if (value === undefined || value === '' || value === null) return [`${field}: missing`];
  if (typeof value !== 'string') return [`${field}: must be a string`];
  if (value.length > maxLength) return [`${field}: longer than ${maxLength} characters`];
  return [];
}

function remoteProblems(remote: unknown): string[] {
  if (remote === undefined || remote === null) return [];
  if (typeof remote !== 'object' || Array.isArray(remote))
    return ['Remote: must be an object {Partition, Datacenter}'];
  const r = remote as Record<string, unknown>;
  return ['Partition', 'Datacenter']
    .filter((k) => r[k] !== undefined && typeof r[k] !== 'string')
    .map((k) => `Remote.${k}: must be a string`);
}

const strings = (value: unknown): string[] =>
  Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];

function tokenOf(obj: Record<string, unknown>): PeeringToken {
  const remote = (obj.Remote ?? {}) as Record<string, unknown>;
  return {
    CA: strings(obj.CA),
    ServerAddresses: strings(obj.ServerAddresses),
    ManualServerAddresses: strings(obj.ManualServerAddresses),
    ServerName: obj.ServerName as string,
    PeerID: obj.PeerID as string,
    EstablishmentSecret: obj.EstablishmentSecret as string,
    Remote: {
      Partition: (remote.Partition as string | undefined) || 'default',
      Datacenter: (remote.Datacenter as string | undefined) ?? '',
    },
  };
}

function show(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
