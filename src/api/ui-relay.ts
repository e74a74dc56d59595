import type { ClusterView } from './cluster-fanout.js';

/** How soon a relay whose stream ended dials that server again. */
const redialMs = 1_000;

/** The servers of the cluster, and a note when one joins or leaves. */
export interface RelayCluster extends ClusterView {
  subscribe(fn: () => void): () => void;
}

/**
 * Follows the other servers' proxy changes for one open UI (issue 17 "Live", docs/architecture.md
 * §2 "Web UI"): a proxy's sync state lives in the memory of the server holding its stream, so a
 * page on this server hears of a NACK on another through that server's own change stream,
 * `GET /v1/ui/events?local=1` (which relays nothing itself), read with the page's own headers.
 * Only the `proxies` topic is taken: the catalog, peerings and CA reach every server through the
 * store's watch. A stream that (re)connects counts as a change, since anything may have happened
 * while it was down. Returns the function that ends every relay; it costs nothing once no UI is
 * open.
 */
export function followOtherServers(
  cluster: RelayCluster,
  headers: Readonly<Record<string, string>>,
  onProxies: () => void,
): () => void {
  const relays = new Map<string, AbortController>();
  const sync = () => {
    const others = new Map(cluster.others().map((p) => [`${p.name}@${p.httpAddr}`, p.httpAddr]));
    for (const [key, abort] of relays)
      if (!others.has(key)) {
        abort.abort();
        relays.delete(key);
      }
    for (const [key, httpAddr] of others) {
      if (relays.has(key)) continue;
      const abort = new AbortController();
      relays.set(key, abort);
      void relay(httpAddr, headers, abort.signal, onProxies);
    }
  };
  const unsubscribe = cluster.subscribe(sync);
  sync();
  return () => {
    unsubscribe();
    for (const abort of relays.values()) abort.abort();
    relays.clear();
  };
}

/** Reads one server's change stream until `signal`, dialing again a second after it ends. */
async function relay(
  httpAddr: string,
  headers: Readonly<Record<string, string>>,
  signal: AbortSignal,
  onProxies: () => void,
): Promise<void> {
  while (!signal.aborted) {
    try {
      const res = await fetch(`http://${httpAddr}/v1/ui/events?local=1`, { headers, signal });
      if (res.status === 200 && res.body) {
        const decoder = new TextDecoder();
        let buffered = '';
        for await (const chunk of res.body) {
          buffered += decoder.decode(chunk as Uint8Array, { stream: true });
          let end = buffered.indexOf('\n\n');
          while (end >= 0) {
            if (carriesProxies(buffered.slice(0, end))) onProxies();
            buffered = buffered.slice(end + 2);
            end = buffered.indexOf('\n\n');
          }
        }
      } else await res.body?.cancel();
    } catch {
      // Unreachable or gone: the member list drops a dead server; until then, dial again.
    }
    if (!signal.aborted) await new Promise((resolve) => setTimeout(resolve, redialMs).unref());
  }
}

/** True for the `ready` frame (a fresh view) and for a change naming `proxies`. */
function carriesProxies(frame: string): boolean {
  if (/^event: ready$/m.test(frame)) return true;
  if (!/^event: change$/m.test(frame)) return false;
  const data = /^data: (.*)$/m.exec(frame)?.[1];
  try {
    const topics = (JSON.parse(data ?? '{}') as { topics?: unknown }).topics;
    return Array.isArray(topics) && topics.includes('proxies');
  } catch {
    return false;
  }
}
