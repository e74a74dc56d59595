/**
 * The request of the demo with Envoy: B's web app calls api through its sidecar's upstream
 * listener, and what shows where it went. The answer is api's own (what reached it, headers
 * included); the path is read from the Envoys' counters, taken just before and after: which
 * cluster of each Envoy carried bytes of it (the xDS cluster aside), and to which hosts.
 */
import { xdsClusterName } from '../mesh/bootstrap.js';
import type { ApiAnswer, WebAnswer } from './demo-apps.js';
import { httpGet } from './demo-apps.js';
import type { DemoEnvoy } from './envoy-process.js';
import { clusterHosts } from './envoy-view.js';

export interface Crossing {
  readonly envoy: string;
  readonly cluster: string;
  readonly hosts: readonly string[];
  readonly bytesOut: number;
  readonly bytesIn: number;
}

export interface MeshCall {
  readonly url: string;
  readonly attempts: number;
  readonly web: WebAnswer;
  readonly answer: ApiAnswer;
  /** Per Envoy, the clusters that carried bytes of the request. */
  readonly crossings: ReadonlyMap<string, readonly Crossing[]>;
}

type Counters = ReadonlyMap<string, ReadonlyMap<string, number>>;

const clusterStats = (envoys: readonly DemoEnvoy[]): Promise<Counters> =>
  Promise.all(envoys.map(async (e) => [e.name, await e.stats('^cluster\\.')] as const)).then(
    (l) => new Map(l),
  );

/**
 * GET `/hello` on web's app, retried (every 250 ms, for `timeoutMs`) while a proxy on the way has
 * not got its config yet; resolves with api's answer and the clusters each Envoy sent it through.
 */
export async function callThroughMesh(
  webPort: number,
  envoys: readonly DemoEnvoy[],
  timeoutMs: number,
): Promise<MeshCall> {
  const url = `http://127.0.0.1:${webPort}/hello`;
  const before = await clusterStats(envoys);
  const deadline = Date.now() + timeoutMs;
  let attempts = 0;
  let last = '';
  for (;;) {
    attempts++;
    const res = await httpGet(url).catch((err: Error) => ({ status: 0, body: err.message }));
    const web = res.status === 200 ? (JSON.parse(res.body) as WebAnswer) : undefined;
    const answer = web?.status === 200 ? parseApiAnswer(web.body) : undefined;
    if (web && answer)
      return { url, attempts, web, answer, crossings: await crossings(envoys, before) };
    last = web
      ? `api's sidecar upstream answered HTTP ${web.status}: ${web.body.slice(0, 200)}`
      : `HTTP ${res.status}: ${res.body.slice(0, 200)}`;
    if (Date.now() > deadline)
      throw new Error(
        `no answer from api through the mesh within ${timeoutMs / 1000} s after ${attempts} attempts (last: ${last})`,
      );
    await new Promise((r) => setTimeout(r, 250));
  }
}

function parseApiAnswer(body: string): ApiAnswer | undefined {
  try {
    const v = JSON.parse(body) as ApiAnswer;
    return v?.app === 'api' ? v : undefined;
  } catch {
    return undefined;
  }
}

async function crossings(
  envoys: readonly DemoEnvoy[],
  before: Counters,
): Promise<Map<string, Crossing[]>> {
  const after = await clusterStats(envoys);
  const out = new Map<string, Crossing[]>();
  for (const envoy of envoys) {
    const [was, now] = [before.get(envoy.name)!, after.get(envoy.name)!];
    const delta = (cluster: string, stat: string) =>
      (now.get(`cluster.${cluster}.${stat}`) ?? 0) - (was.get(`cluster.${cluster}.${stat}`) ?? 0);
    const found: Crossing[] = [];
    for (const [cluster, hosts] of await clusterHosts(envoy)) {
      if (cluster === xdsClusterName) continue; // the ADS stream, not the request
      const bytesOut = delta(cluster, 'upstream_cx_tx_bytes_total');
      if (bytesOut > 0)
        found.push({
          envoy: envoy.name,
          cluster,
          hosts: hosts.map((h) => h.address),
          bytesOut,
          bytesIn: delta(cluster, 'upstream_cx_rx_bytes_total'),
        });
    }
    out.set(envoy.name, found);
  }
  return out;
}
