import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { ClusterView } from './cluster-fanout.js';
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
  /** The other servers of the cluster, asked for the status they hold (absent: none). */
  readonly cluster?: ClusterView | undefined;
  /** Body size, connection count and slow-client timeouts; each absent one is its default. */
  readonly limits?: Partial<HttpLimits> | undefined;
}

/**
 * The HTTP API's abuse limits (issue 18, docs/architecture.md §2 "Limits of the HTTP API").
 * Node checks the header and request timeouts every `connectionsCheckingIntervalMs`.
 */
export interface HttpLimits {
  /** `--http-max-body-bytes`: larger bodies get 413 before they are buffered whole. */
  readonly maxBodyBytes: number;
  /** `--http-max-connections`: sockets beyond this are closed as they are accepted. */
  readonly maxConnections: number;
  /** A client must send its whole request head within this long (slowloris). */
  readonly headersTimeoutMs: number;
  /** ... and its whole request, body included, within this long. */
  readonly requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this long. */
  readonly keepAliveTimeoutMs: number;
  readonly connectionsCheckingIntervalMs: number;
}

/**
 * 4 MiB fits the largest legitimate body with room to spare: an exported-services entry naming
 * the 5,000 services a peer may import (importLimits.services), each with 16 consumers, is about
 * 2 MB of JSON; registrations and other config entries are a few KiB.
 */
export const defaultHttpLimits: HttpLimits = {
  maxBodyBytes: 4 * 1024 * 1024,
  maxConnections: 1024,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 10_000,
  connectionsCheckingIntervalMs: 1_000,
};

/**
 * The HTTP API (not yet listening: the caller calls `listen`). Fastify logs through our pino
 * instance but not per request: probes and scrapes arrive every few seconds.
 */
export function createHttpApi(deps: HttpApiDeps): FastifyInstance {
  const limits = { ...defaultHttpLimits, ...deps.limits };
  const app = Fastify({
    loggerInstance: deps.logger.child({ component: 'http' }) as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    forceCloseConnections: 'idle',
    bodyLimit: limits.maxBodyBytes,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    http: {
      headersTimeout: limits.headersTimeoutMs,
      connectionsCheckingInterval: limits.connectionsCheckingIntervalMs,
    },
  });
  app.server.maxConnections = limits.maxConnections;
  app.setErrorHandler(handleHttpError);
  app.setNotFoundHandler(handleNotFound);
  trackRoutes(app);
  registerProbeRoutes(app, deps.health, deps.metrics);
  registerXdsRoutes(app, deps.xds, deps.catalog, deps.cluster);
  return app;
}
