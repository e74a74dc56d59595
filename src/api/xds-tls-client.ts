import { IsthmusError } from '../errors.js';
import type { XdsClientTls } from '../xds/tls.js';
import type { ApiClient } from './client.js';
import type { XdsServerJson } from './xds-routes.js';

/**
 * How to reach the server's xDS port, asked of its HTTP API (`GET /v1/xds/server`): the roots and
 * server name to verify, or undefined when it serves plaintext (`--xds-plaintext`).
 */
export async function fetchXdsTls(client: ApiClient): Promise<XdsClientTls | undefined> {
  const info = await client.get<XdsServerJson>('/v1/xds/server');
  if (!info.TLS) return undefined;
  if (!info.ServerName || !info.CaPem)
    throw new IsthmusError(
      'internal',
      `GET /v1/xds/server at ${client.baseUrl} says TLS without ServerName and CaPem`,
    );
  return { serverName: info.ServerName, caPem: info.CaPem };
}
