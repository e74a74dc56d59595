import type { FastifyInstance } from 'fastify';
import type { Metrics } from '../metrics.js';
import { anyone, withAccess } from './route-access.js';

/** What `/readyz` asks. `notReady` explains a `false` from `ready()` in the 503 body. */
export interface Health {
  ready(): boolean;
  notReady?(): readonly string[];
  /** Startup work still to do, counted by kind (e.g. `proxiesWithoutSnapshot`); empty once done. */
  pending?(): Readonly<Record<string, number>>;
}

/**
 * `/healthz` (liveness: the process serves HTTP), `/readyz` (readiness: route traffic here) and
 * `/metrics` (Prometheus text exposition).
 */
export function registerProbeRoutes(app: FastifyInstance, health: Health, metrics: Metrics): void {
  app.get('/healthz', withAccess(anyone), async () => ({ status: 'ok' }));

  app.get('/readyz', withAccess(anyone), async (_request, reply) => {
    if (health.ready()) return { status: 'ok' };
    const notReady = health.notReady?.() ?? ['unknown'];
    const pending = health.pending?.() ?? {};
    // "starting": up, restoring what it serves; "not ready": anything else (e.g. shutting down).
    if (Object.keys(pending).length === 0)
      return reply.status(503).send({ status: 'not ready', not_ready: notReady });
    return reply.status(503).send({ status: 'starting', pending, not_ready: notReady });
  });

  app.get('/metrics', withAccess(anyone), async (_request, reply) => {
    const text = await metrics.registry.metrics();
    return reply.type(metrics.registry.contentType).send(text);
  });
}
