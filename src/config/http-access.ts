import { isIP } from 'node:net';
import type { HostPort } from './host-port.js';
import { formatHostPort } from './host-port.js';

/** Whether `host` only accepts connections from this machine (localhost, 127.0.0.0/8, ::1). */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  if (h === 'localhost' || h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  const v4 = h.startsWith('::ffff:') ? h.slice('::ffff:'.length) : h;
  return isIP(v4) === 4 && v4.startsWith('127.');
}

export interface HttpExposure {
  readonly httpAddr: HostPort;
  readonly httpToken?: string | undefined;
  readonly insecureHttp: boolean;
}

/**
 * The HTTP API registers services and (later) hands out peering tokens and secrets: on an address
 * other machines can reach it needs a token, unless the operator says `--insecure-http`. Returns
 * the one-line refusal, or undefined when the combination is allowed.
 */
export function httpExposureProblem(config: HttpExposure): string | undefined {
  if (config.httpToken || config.insecureHttp || isLoopbackHost(config.httpAddr.host))
    return undefined;
  return (
    `--http-addr: ${formatHostPort(config.httpAddr)} is not a loopback address and no --http-token is set; ` +
    'set --http-token (or ISTHMUS_HTTP_TOKEN) so writes and secret reads need it, or pass --insecure-http to serve the API without one'
  );
}
