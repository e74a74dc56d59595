import type { ClusterView } from '../api/cluster-fanout.js';
import { memberDeadlineMs } from '../api/cluster-fanout.js';
import {
  type ClientConfig,
  ClientStatusRequest,
  ClientStatusResponse,
} from '../gen/envoy/service/status/v3/csds.js';
import type { Logger } from '../log.js';
import type { CsdsRemote } from '../xds/csds.js';

/**
 * CSDS over the whole cluster (docs/architecture.md §1 "Membership"): the other servers' answers to
 * the same request, read from their `GET /v1/xds/csds` with the caller's credentials, each within
 * `memberDeadlineMs`. A server that does not answer, or refuses the caller (a `service:<name>`
 * token, which that route does not take), adds nothing.
 */
export function csdsFromOthers(cluster: ClusterView, logger: Logger): CsdsRemote {
  return async (credentials, req) => {
    const others = cluster.others();
    if (others.length === 0) return [];
    const request = Buffer.from(ClientStatusRequest.encode(req).finish()).toString('base64');
    const answers = await Promise.all(
      others.map(async (peer): Promise<readonly ClientConfig[]> => {
        try {
          const res = await fetch(
            `http://${peer.httpAddr}/v1/xds/csds?local=1&request=${encodeURIComponent(request)}`,
            { headers: credentials, signal: AbortSignal.timeout(memberDeadlineMs) },
          );
          if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
          const body = (await res.json()) as { Response?: string };
          return ClientStatusResponse.decode(Buffer.from(body.Response ?? '', 'base64')).config;
        } catch (err) {
          logger.debug({ server: peer.name, error: (err as Error).message }, 'csds: no answer');
          return [];
        }
      }),
    );
    return answers.flat();
  };
}
