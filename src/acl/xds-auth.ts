import type { Metadata } from '@grpc/grpc-js';
import type { Logger } from '../log.js';
import type { XdsAuthMode } from '../config/index.js';
import type { ProxyTokens } from './proxy-tokens.js';

export type XdsAuthorize = (nodeId: string, metadata: Metadata) => void;
/** Checks a stream's metadata when it opens; returns the key its per-token limit counts under. */
export type XdsAuthenticate = (metadata: Metadata) => string | undefined;

/** The `authenticate` and `authorize` options of XdsServer. */
export interface XdsAuth {
  readonly authenticate: XdsAuthenticate;
  readonly authorize: XdsAuthorize;
}

/**
 * The admission checks of XdsServer for `--xds-auth`: `token` checks proxy tokens (the token when
 * the stream opens, its binding to node.id on the first request); `off` admits every stream as
 * whatever node it claims to be, so it is announced once, loudly, at startup.
 */
export function xdsAuth(mode: XdsAuthMode, tokens: ProxyTokens, logger: Logger): XdsAuth {
  if (mode === 'off') {
    logger.warn(
      { xdsAuth: mode },
      'xDS authentication is off: any client can connect as any proxy and receive its private key; use only for local experiments',
    );
    return { authenticate: () => undefined, authorize: () => undefined };
  }
  return {
    authenticate: (metadata) => tokens.authenticateXds(metadata),
    authorize: (nodeId, metadata) => tokens.authorizeXds(nodeId, metadata),
  };
}

/** The `authorize` half of `xdsAuth` (the binding of a token to node.id). */
export function xdsAuthorizer(
  mode: XdsAuthMode,
  tokens: ProxyTokens,
  logger: Logger,
): XdsAuthorize {
  return xdsAuth(mode, tokens, logger).authorize;
}
