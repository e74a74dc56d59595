import type { Metadata } from '@grpc/grpc-js';
import type { Logger } from '../log.js';
import type { ProxyTokens } from './proxy-tokens.js';

export type XdsAuthMode = 'token' | 'off';
export const xdsAuthModes: readonly XdsAuthMode[] = ['token', 'off'];
/** The gRPC metadata entry of an xDS stream that carries its proxy token (what bootstraps set). */
export const xdsTokenHeader = 'x-isthmus-token';

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
