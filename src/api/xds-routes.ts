import type { FastifyInstance } from 'fastify';

/** The part of the xDS server the HTTP API reads. */
export interface XdsStatusSource {
  proxyStatus(): unknown[];
}

/** `GET /v1/xds/proxies`: one entry per connected proxy (the same data CSDS serves). */
export function registerXdsRoutes(app: FastifyInstance, xds: XdsStatusSource): void {
  app.get('/v1/xds/proxies', async () => xds.proxyStatus());
}
