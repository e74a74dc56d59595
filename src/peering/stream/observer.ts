import type { Logger } from '../../log.js';
import type { StreamObserver } from './types.js';

const callbacks = [
  'onActive',
  'onFailing',
  'onHeartbeat',
  'onReceive',
  'onSend',
  'onResponseSent',
  'onNack',
  'onTerminated',
] as const;

/**
 * The observer with every callback made safe: a throwing status tracker is logged and must never
 * break the stream (callbacks run inside gRPC stream events).
 */
export function guardObserver(
  observer: StreamObserver,
  logger: Logger,
  context: Record<string, unknown>,
): Required<StreamObserver> {
  const guarded = {} as Record<(typeof callbacks)[number], (...args: unknown[]) => void>;
  for (const name of callbacks) {
    guarded[name] = (...args: unknown[]) => {
      const fn = observer[name] as ((...a: unknown[]) => void) | undefined;
      try {
        fn?.apply(observer, args);
      } catch (err) {
        logger.error(
          { ...context, callback: name, error: (err as Error).message },
          'peering stream observer failed',
        );
      }
    };
  }
  return guarded as Required<StreamObserver>;
}
