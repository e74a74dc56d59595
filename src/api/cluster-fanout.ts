import type { FastifyReply, FastifyRequest } from 'fastify';

/**
 * The servers of this cluster as the HTTP API reaches them (docs/architecture.md §1 "Membership"):
 * status that lives in one server's memory (its xDS streams) is gathered by asking the others over
 * HTTP, as istioctl asks every istiod.
 */
export interface ClusterView {
  /** This server's name (`--node-name`). */
  readonly self: string;
  /** Every other live server of the cluster, with its HTTP API address. */
  others(): readonly ClusterPeer[];
}

export interface ClusterPeer {
  readonly name: string;
  readonly httpAddr: string;
}

/** How long each other server gets to answer; one that does not is listed as unreachable. */
export const memberDeadlineMs = 2_000;

/** Names the servers a fanned-out answer is missing, comma-separated (absent: none). */
export const unreachableHeader = 'isthmus-unreachable-servers';

export interface FanOut<T> {
  /** Each server that answered 200, with its body. */
  readonly answers: readonly { readonly server: string; readonly body: T }[];
  /** Servers that answered 404 (they do not have it). */
  readonly notFound: readonly string[];
  /** Servers that did not answer in time, or answered an error, with why. */
  readonly unreachable: readonly { readonly server: string; readonly error: string }[];
}

/** True when the caller asked for this server's own view only (`?local=1`, what fan-out sends). */
export function wantsLocal(request: FastifyRequest): boolean {
  const q = request.query as Record<string, unknown> | undefined;
  return q?.local === '1' || q?.local === 'true';
}

/** The caller's token headers, as another server of the cluster is asked with them. */
export function forwardedHeaders(request: FastifyRequest): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const h of ['authorization', 'x-isthmus-token']) {
    const v = request.headers[h];
    if (typeof v === 'string') headers[h] = v;
  }
  return headers;
}

/**
 * GETs `path` (this server's own route) with `local=1` from every other server at once (or only
 * from the one named `only`), with the caller's token, each within `memberDeadlineMs`. Never
 * throws: a server that fails is listed.
 */
export async function askOthers<T>(
  cluster: ClusterView | undefined,
  request: FastifyRequest,
  path: string,
  only?: string,
): Promise<FanOut<T>> {
  const others = (cluster?.others() ?? []).filter((p) => only === undefined || p.name === only);
  const headers = forwardedHeaders(request);
  const sep = path.includes('?') ? '&' : '?';
  const results = await Promise.all(
    others.map(async (peer) => {
      try {
        const res = await fetch(`http://${peer.httpAddr}${path}${sep}local=1`, {
          headers,
          signal: AbortSignal.timeout(memberDeadlineMs),
        });
        const text = await res.text();
        if (res.status === 200) return { server: peer.name, body: JSON.parse(text) as T };
        if (res.status === 404) return { server: peer.name, notFound: true as const };
        return { server: peer.name, error: `HTTP ${res.status}: ${text.slice(0, 200)}` };
      } catch (err) {
        const e = err as Error;
        const why =
          e.name === 'TimeoutError' ? `no answer within ${memberDeadlineMs} ms` : e.message;
        return { server: peer.name, error: why };
      }
    }),
  );
  return {
    answers: results.flatMap((r) => ('body' in r ? [{ server: r.server, body: r.body }] : [])),
    notFound: results.flatMap((r) => ('notFound' in r ? [r.server] : [])),
    unreachable: results.flatMap((r) =>
      'error' in r ? [{ server: r.server, error: r.error }] : [],
    ),
  };
}

/** Sets the unreachable-servers header when some server did not answer. */
export function markUnreachable(reply: FastifyReply, fanOut: Pick<FanOut<unknown>, 'unreachable'>) {
  if (fanOut.unreachable.length > 0)
    reply.header(unreachableHeader, fanOut.unreachable.map((u) => u.server).join(', '));
}

/**
 * What the server a proxy is connected to answers for `path`, when that is another server of the
 * cluster (undefined: the proxy is here, nowhere, or the caller asked for `?local=1`). Status that
 * needs the proxy's stream (troubleshoot) is read where the stream is.
 */
export async function fromProxyHolder(
  cluster: ClusterView | undefined,
  request: FastifyRequest,
  proxyId: string,
  path: string,
): Promise<{ readonly body: unknown } | undefined> {
  if (!cluster || wantsLocal(request) || cluster.others().length === 0) return undefined;
  const holders = await askOthers(
    cluster,
    request,
    `/v1/xds/proxies/${encodeURIComponent(proxyId)}`,
  );
  const holder = holders.answers[0]?.server;
  if (holder === undefined) return undefined;
  return (await askOthers(cluster, request, path, holder)).answers[0];
}
