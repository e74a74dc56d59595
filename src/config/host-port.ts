import { isIP } from 'node:net';
import { dnsHostname } from '../dns-names.js';

/** A listen address: `host` without IPv6 brackets, as `net` and fastify expect it. */
export interface HostPort {
  readonly host: string;
  readonly port: number;
}

const bracketed = /^\[([^\]]+)\]:(\d{1,5})$/;
const plain = /^([^:[\]]+):(\d{1,5})$/;

/**
 * Parses `HOST:PORT` or `[IPv6]:PORT` (port 0-65535, 0 = any free port); undefined when malformed.
 */
export function parseHostPort(text: string): HostPort | undefined {
  const v6 = bracketed.exec(text);
  if (v6) return isIP(v6[1]!) === 6 ? withPort(v6[1]!, v6[2]!) : undefined;
  const v4 = plain.exec(text);
  if (!v4) return undefined;
  const host = v4[1]!;
  return isIP(host) === 4 || dnsHostname.test(host) ? withPort(host, v4[2]!) : undefined;
}

function withPort(host: string, digits: string): HostPort | undefined {
  const port = Number(digits);
  return port <= 65535 ? { host, port } : undefined;
}

/** `host:port`, with brackets around IPv6 hosts (the form gRPC and URLs take). */
export function formatHostPort(addr: HostPort, port = addr.port): string {
  return isIP(addr.host) === 6 ? `[${addr.host}]:${port}` : `${addr.host}:${port}`;
}
