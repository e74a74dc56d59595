import type { Metadata } from '@grpc/grpc-js';
import type { Logger } from '../log.js';
import type { XdsAuthMode } from '../config/index.js';
import type { ProxyTokens } from './proxy-tokens.js';

export type XdsAuthorize = (nodeId: string, metadata: Metadata) => void;

/**
 * The `authorize` option of XdsServer for `--xds-auth`: `token` checks proxy tokens; `off` admits
 * every stream as whatever node it claims to be, so it is announced once, loudly, at startup.
 */
export function xdsAuthorizer(
  mode: XdsAuthMode,
  tokens: ProxyTokens,
  logger: Logger,
): XdsAuthorize {
  if (mode === 'off') {
    logger.warn(
      { xdsAuth: mode },
      'xDS authentication is off: any client can connect as any proxy and receive its private key; use only for local experiments',
    );
    return () => undefined;
  }
  return (nodeId, metadata) => tokens.authorizeXds(nodeId, metadata);
}
