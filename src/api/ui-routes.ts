import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { IsthmusError } from '../errors.js';
import type { Checklist } from '../troubleshoot/checklist.js';
import type { TroubleshootSources } from '../troubleshoot/index.js';
import { forwardedHeaders, wantsLocal } from './cluster-fanout.js';
import { anyone, readers, withAccess } from './route-access.js';
import type { UiChecklistJson, UiProxyConfigJson, UiProxyJson } from './ui-json.js';
import type { ProxyConfigJson, ProxyJson } from './xds-routes.js';
import { eventStreamHeaders, UiEvents, type UiEventSources } from './ui-events.js';
import { type UiSources, uiOverview, uiServices, uiTopology } from './ui-views.js';
import { whyChecklist } from './ui-why.js';

export interface UiRoutesDeps {
  readonly views: UiSources;
  readonly troubleshoot: TroubleshootSources & { readonly ca: { readonly trustDomain: string } };
  readonly events: UiEventSources;
  /** The compiled UI (`npm run build:ui`); default: ui/dist of this checkout. */
  readonly assetsDir?: string;
  readonly now?: () => number;
}

/**
 * The UI reads the proxy and troubleshoot JSON through the shapes of ui-json.ts (the browser
 * compiles no server module): tsc fails here when the served JSON stops fitting them.
 */
export type UiReadsServedJson = [
  Fits<ProxyJson, UiProxyJson>,
  Fits<ProxyConfigJson, UiProxyConfigJson>,
  Fits<Checklist, UiChecklistJson>,
];
type Fits<Served extends Read, Read> = [Served, Read];

/** Where `npm run build:ui` writes, from src/api/ or dist/api/ alike. */
export const defaultUiAssetsDir = fileURLToPath(new URL('../../ui/dist/', import.meta.url));

/**
 * The web UI (issue 17; docs/architecture.md §2 "Web UI"): the compiled single-page app at `/ui/`
 * (public: the assets hold no data) and the aggregates it reads, `GET /v1/ui/overview|services|
 * topology|why` and the change stream `GET /v1/ui/events`, which need a `read` token as every
 * other status read does once `--http-token` is set.
 */
export function registerUiRoutes(app: FastifyInstance, deps: UiRoutesDeps): UiEvents {
  const now = deps.now ?? Date.now;
  const read = withAccess(readers);
  registerAssets(app, deps.assetsDir ?? defaultUiAssetsDir);
  app.get('/v1/ui/overview', read, async () => uiOverview(deps.views, now()));
  app.get('/v1/ui/services', read, async () => uiServices(deps.views));
  app.get('/v1/ui/topology', read, async () => uiTopology(deps.views));
  app.get<{ Querystring: Record<string, string | undefined> }>(
    '/v1/ui/why',
    read,
    async (request) => {
      const q = request.query;
      return whyChecklist(deps.troubleshoot, {
        source: required(q.source, 'source'),
        sourcePeer: q.source_peer ?? '',
        destination: required(q.destination, 'destination'),
        destinationPeer: q.destination_peer ?? '',
      });
    },
  );
  const events = new UiEvents(deps.events);
  app.get('/v1/ui/events', read, (request, reply) => {
    reply.hijack();
    // HEAD (fastify answers it with this handler) gets the stream's headers and no stream.
    if (request.method === 'HEAD') return void reply.raw.writeHead(200, eventStreamHeaders).end();
    events.attach(reply.raw, wantsLocal(request) ? undefined : forwardedHeaders(request));
    request.raw.on('close', () => reply.raw.end());
  });
  app.addHook('preClose', async () => events.close());
  return events;
}

function required(value: string | undefined, field: string): string {
  if (value) return value;
  throw new IsthmusError(
    'invalid_argument',
    `${field}: missing; name a service, e.g. ?source=web&destination=api&destination_peer=a`,
    field,
  );
}

/**
 * `/ui` and `/ui/<file>`: index.html and its bundle. The app routes with `#/page`, so every page
 * is index.html. The policy allows this origin's scripts, styles and fetches only.
 */
function registerAssets(app: FastifyInstance, dir: string): void {
  const built = existsSync(`${dir}/index.html`);
  if (built) void app.register(fastifyStatic, { root: dir, serve: false });
  const open = withAccess(anyone);
  const send = (reply: FastifyReply, file: string) => {
    if (!built)
      throw new IsthmusError(
        'unavailable',
        `the web UI is not built in ${dir}: run npm run build:ui (npm ci runs it)`,
      );
    void reply
      .header(
        'content-security-policy',
        "default-src 'self'; img-src 'self' data:; object-src 'none'; frame-ancestors 'none'",
      )
      .header('x-content-type-options', 'nosniff');
    return reply.sendFile(file);
  };
  app.get('/ui', open, async (_request, reply) => reply.redirect('/ui/'));
  app.get('/ui/', open, async (_request, reply) => send(reply, 'index.html'));
  app.get<{ Params: { '*': string } }>('/ui/*', open, async (request, reply) =>
    send(reply, request.params['*']),
  );
}
