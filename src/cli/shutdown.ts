import type { Logger } from '../log.js';

export interface ShutdownOptions {
  readonly logger: Logger;
  readonly stop: () => Promise<void>;
  /** After this long the process exits with code 1 even if `stop` has not finished. */
  readonly hardExitMs?: number;
  readonly signals?: readonly NodeJS.Signals[];
  readonly exit?: (code: number) => void;
}

/**
 * Waits for SIGTERM or SIGINT, runs `stop` once and resolves with the exit code (0 on a clean
 * stop). A second signal, or a stop that outlives `hardExitMs`, exits at once with code 1.
 */
export function onShutdownSignal(opts: ShutdownOptions): Promise<number> {
  const {
    logger,
    stop,
    hardExitMs = 10_000,
    signals = ['SIGTERM', 'SIGINT'],
    exit = (code) => process.exit(code),
  } = opts;
  return new Promise<number>((resolve) => {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals): void => {
      if (stopping) {
        logger.warn({ signal }, 'second signal during shutdown; exiting now');
        exit(1);
        return;
      }
      stopping = true;
      logger.info({ signal, hardExitMs }, 'shutdown requested');
      const timer = setTimeout(() => {
        logger.error({ hardExitMs }, 'shutdown did not finish in time; exiting');
        exit(1);
      }, hardExitMs);
      stop()
        .then(
          () => resolve(0),
          (err: unknown) => {
            logger.error({ err }, 'shutdown failed');
            resolve(1);
          },
        )
        .finally(() => clearTimeout(timer));
    };
    for (const signal of signals) process.on(signal, onSignal);
  });
}
