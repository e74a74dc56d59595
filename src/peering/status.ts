import type { Logger } from '../log.js';
import type { Peerings } from './peerings.js';
import type { StreamObserver } from './stream/types.js';
import type { PeeringState, StreamStatus } from './types.js';

/** lastReceive / lastSend are written at most this often per peering (each is a Store write). */
const activityWriteMs = 1_000;

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
 * is being deleted or is gone) is only logged.
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
  const lastWrite = { lastReceive: 0, lastSend: 0 };
  const activity = (field: 'lastReceive' | 'lastSend', at: Date) => {
    if (at.getTime() - lastWrite[field] < activityWriteMs) return;
    lastWrite[field] = at.getTime();
    const patch: Partial<StreamStatus> = { [field]: at.toISOString() };
    write(field, () => peerings.setStreamStatus(name, patch));
  };
  return {
    onActive: () => {
      lastWrite.lastReceive = lastWrite.lastSend = 0;
      const now = new Date().toISOString();
      write('active', () => peerings.setStreamStatus(name, { lastReceive: now }));
      setState('ACTIVE');
    },
    onFailing: (error) => setState('FAILING', error),
    onHeartbeat: (at) =>
      write('heartbeat', () =>
        peerings.setStreamStatus(name, {
          lastHeartbeat: at.toISOString(),
          lastReceive: at.toISOString(),
        }),
      ),
    onReceive: (at) => activity('lastReceive', at),
    onSend: (at) => activity('lastSend', at),
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
