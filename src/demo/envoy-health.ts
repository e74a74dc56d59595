/**
 * "This Envoy took everything it was sent": `/ready` says LIVE (initial CDS and LDS applied), no
 * xDS update was rejected (every `*.update_rejected` counter: CDS, LDS, RDS, EDS, SDS) and nothing
 * is warming. An Envoy that rejects an update keeps its last good config and only says so in these
 * counters and its log, so the demo checks them before it sends a request.
 */
import { type DemoEnvoy, EnvoyFailure } from './envoy-process.js';

const healthFilter =
  'update_rejected$|^cluster_manager\\.warming_clusters$|^listener_manager\\.total_listeners_warming$';

export interface EnvoyHealth {
  readonly state: string;
  readonly rejected: readonly string[];
  readonly warming: readonly string[];
}

export async function envoyHealth(envoy: DemoEnvoy): Promise<EnvoyHealth> {
  const state = (
    await envoy.admin('/ready').catch((err: Error) => `unreachable (${err.message})`)
  ).trim();
  const stats = await envoy.stats(healthFilter);
  const nonzero = (pick: (name: string) => boolean) =>
    [...stats].filter(([n, v]) => pick(n) && v !== 0).map(([n, v]) => `${n}=${v}`);
  return {
    state,
    rejected: nonzero((n) => n.endsWith('update_rejected')),
    warming: nonzero((n) => n.includes('warming')),
  };
}

/**
 * Resolves once LIVE with nothing rejected or warming; a rejection or exit fails at once, naming
 * the Envoy with its last log lines.
 */
export async function waitEnvoyHealthy(envoy: DemoEnvoy, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer yet';
  for (;;) {
    const exited = envoy.exited();
    if (exited !== undefined)
      throw new EnvoyFailure(envoy.name, `exited (${exited})`, envoy.logTail());
    try {
      const h = await envoyHealth(envoy);
      if (h.rejected.length > 0)
        throw new EnvoyFailure(
          envoy.name,
          `rejected an update from isthmus (${h.rejected.join(', ')})`,
          rejectionLines(envoy.logTail(200)),
        );
      if (h.state === 'LIVE' && h.warming.length === 0) return;
      last = `${h.state}${h.warming.length > 0 ? `, warming ${h.warming.join(', ')}` : ''}`;
    } catch (err) {
      if (err instanceof EnvoyFailure) throw err;
      last = (err as Error).message;
    }
    if (Date.now() > deadline)
      throw new EnvoyFailure(
        envoy.name,
        `not LIVE within ${timeoutMs / 1000} s (last: ${last})`,
        envoy.logTail(),
      );
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The log lines that say what was rejected and why (the last 20 lines when none does). */
function rejectionLines(lines: readonly string[]): string[] {
  const hits = lines.filter((l) =>
    /rejected|error adding\/updating|invalid|\[error\]|\[warning\]/i.test(l),
  );
  return (hits.length > 0 ? hits : lines).slice(-20);
}
