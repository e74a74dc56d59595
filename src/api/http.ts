import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { handleHttpError, handleNotFound } from './errors.js';
import { type Health, registerProbeRoutes } from './probe-routes.js';
import { trackRoutes } from './route-access.js';
import { type ProxyKindSource, type XdsStatusSource, registerXdsRoutes } from './xds-routes.js';

export type { Health } from './probe-routes.js';
export type { ProxyKindSource, XdsStatusSource } from './xds-routes.js';

export interface HttpApiDeps {
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly health: Health;
  readonly xds: XdsStatusSource;
  /** Tells each connected proxy's kind in `/v1/xds/proxies` (the catalog); absent: no `Kind`. */
  readonly catalog?: ProxyKindSource | undefined;
}

/**
 * The HTTP API (not yet listening: the caller calls `listen`). Fastify logs through our pino
 * instance but not per request: probes and scrapes arrive every few seconds.
 */
export function createHttpApi(deps: HttpApiDeps): FastifyInstance {
  const app = Fastify({
    loggerInstance: deps.logger.child({ component: 'http' }) as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    forceCloseConnections: 'idle',
  });
  app.setErrorHandler(handleHttpError);
  app.setNotFoundHandler(handleNotFound);
  trackRoutes(app);
  registerProbeRoutes(app, deps.health, deps.metrics);
  registerXdsRoutes(app, deps.xds, deps.catalog);
  return app;
}
