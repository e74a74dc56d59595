import type { Logger } from '../log.js';
import type { Peerings } from './peerings.js';
import type { StreamObserver } from './stream/types.js';
import type { PeeringState, StreamStatus } from './types.js';

/**
 * Liveness (lastHeartbeat, lastReceive, lastSend) is held in memory and written at most this often
 * per peering (issue 21 §3: one Store write per heartbeat let a flooding peer slow local writes).
 */
export const activityWriteMs = 1_000;

export interface StatusObserverOptions {
  readonly peerings: Pick<Peerings, 'setState' | 'setStreamStatus' | 'read'>;
  readonly peeringName: string;
  readonly logger: Logger;
  /** The peer deleted the peering: drop what was imported from it. */
  onTerminated(): Promise<void>;
}

/**
 * A stream's events → the peering's state and StreamStatus in the Store (docs/architecture.md §6
 * "States"): ACTIVE when the stream is up, FAILING with the error when it is down, TERMINATED when
 * the peer deleted the peering. Writes are serialized per stream, and a failed write (the peering
 * is being deleted or is gone) is only logged. Liveness times are coalesced: a flood of heartbeats
 * costs one write a second, and the Store's times lag the stream's by at most `activityWriteMs`
 * (after a restart the peering is FAILING until its stream is back, whatever the times say).
 */
export function statusObserver(opts: StatusObserverOptions): StreamObserver {
  const { peerings, peeringName: name, logger } = opts;
  let chain: Promise<unknown> = Promise.resolve();
  const write = (what: string, fn: () => Promise<unknown>) => {
    chain = chain
      .then(fn)
      .catch((err: unknown) =>
        logger.debug(
          { peering: name, what, error: (err as Error).message },
          'peering status not recorded',
        ),
      );
  };
  const setState = (state: PeeringState, error?: string) =>
    write('state', () => peerings.setState(name, state, error));
  const activity = coalescedActivity((patch) =>
    write('activity', () => peerings.setStreamStatus(name, patch)),
  );
  return {
    onActive: () => {
      const now = new Date().toISOString();
      // A recovered peering no longer shows why it last failed (issue 21).
      write('active', () =>
        peerings.setStreamStatus(name, { lastReceive: now, lastError: undefined }),
      );
      setState('ACTIVE');
    },
    onFailing: (error) => setState('FAILING', error),
    onHeartbeat: (at) =>
      activity({ lastHeartbeat: at.toISOString(), lastReceive: at.toISOString() }),
    onReceive: (at) => activity({ lastReceive: at.toISOString() }),
    onSend: (at) => activity({ lastSend: at.toISOString() }),
    onNack: (message) => write('nack', () => peerings.setStreamStatus(name, { lastNack: message })),
    onTerminated: () => {
      logger.info({ peering: name }, 'the peer deleted the peering: terminated');
      setState('TERMINATED');
      write('terminated', async () => {
        await opts.onTerminated();
        await peerings.setStreamStatus(name, { importedServices: [], exportedServices: [] });
      });
    },
  };
}

type Activity = Pick<StreamStatus, 'lastHeartbeat' | 'lastReceive' | 'lastSend'>;

/**
 * Merges liveness patches in memory and hands them to `flush` at most once per `activityWriteMs`:
 * the first at once, the rest at the end of the interval (so the latest time is never lost).
 */
function coalescedActivity(flush: (patch: Activity) => void): (patch: Activity) => void {
  let pending: Activity | undefined;
  let lastFlush = 0;
  let timer: NodeJS.Timeout | undefined;
  const flushNow = () => {
    timer = undefined;
    if (!pending) return;
    lastFlush = Date.now();
    const patch = pending;
    pending = undefined;
    flush(patch);
  };
  return (patch) => {
    pending = { ...pending, ...patch };
    if (timer) return;
    const wait = lastFlush + activityWriteMs - Date.now();
    if (wait <= 0) flushNow();
    else timer = setTimeout(flushNow, wait).unref();
  };
}
