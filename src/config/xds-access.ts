import type { HostPort } from './host-port.js';
import { formatHostPort } from './host-port.js';
import { isLoopbackHost } from './http-access.js';

export interface XdsExposure {
  readonly xdsAddr: HostPort;
  readonly xdsPlaintext: boolean;
  readonly xdsPlaintextAllowRemote: boolean;
}

/**
 * The xDS port hands every proxy its private key and carries its token: in plaintext it may only
 * listen where no other machine can reach it, unless the operator says so twice (issue 18). Returns
 * the one-line refusal, or undefined when the combination is allowed.
 */
export function xdsPlaintextProblem(config: XdsExposure): string | undefined {
  if (!config.xdsPlaintext || config.xdsPlaintextAllowRemote) return undefined;
  if (isLoopbackHost(config.xdsAddr.host)) return undefined;
  return (
    `--xds-plaintext: --xds-addr ${formatHostPort(config.xdsAddr)} is not a loopback address, and plaintext xDS sends proxy keys and tokens in clear; ` +
    'drop --xds-plaintext to serve TLS (the default), or add --xds-plaintext-allow-remote if the network is otherwise protected'
  );
}

/** The warning logged at start whenever the xDS port is plaintext. */
export const xdsPlaintextWarning =
  'the xDS port serves plaintext (--xds-plaintext): proxy private keys and tokens travel unencrypted; serve TLS (the default) outside local experiments';
