import type { Logger } from '../log.js';

/**
 * The order a server stops in (docs/architecture.md §1): readiness fails first (load balancers
 * stop sending), then xDS streams end after a GOAWAY (proxies reconnect to another server), then
 * peering, snapshots and HTTP, and last the state under them, the Store at the very end.
 */
const stopOrder = [
  'xds',
  'peering streams',
  'peering server',
  'federation',
  'snapshots',
  'http',
  'catalog',
  'peerings',
  'ca',
  'acl',
  'api tokens',
  'store',
] as const;

/** How long xDS and peering streams get to end on their own before they are cut (of 10 s). */
export const streamGraceMs = 5_000;

export type PartName = (typeof stopOrder)[number];

/**
 * The parts of a server that need stopping, each registered the moment it is created. So a failed
 * start stops exactly the parts created so far, and a running server all of them, always in
 * `stopOrder` whatever the order of creation. Every step runs even if an earlier one failed.
 */
export class StartedParts {
  private readonly steps = new Map<PartName, () => Promise<void>>();
  private stopping: Promise<void> | undefined;

  constructor(private readonly logger: Logger) {}

  /** Registers a part just created, with how it stops, and returns it. */
  add<T>(name: PartName, part: T, stop: (part: T) => Promise<void> | void): T {
    this.steps.set(name, async () => stop(part));
    return part;
  }

  /** Whether the part was created and has not been stopped. */
  has(name: PartName): boolean {
    return this.steps.has(name);
  }

  /** True from the moment stopping begins (readiness fails at once). */
  get shuttingDown(): boolean {
    return this.stopping !== undefined;
  }

  /** Stops every part created, once; later calls get the same promise. */
  stopAll(): Promise<void> {
    this.stopping ??= this.run();
    return this.stopping;
  }

  private async run(): Promise<void> {
    this.logger.info('server stopping');
    let failure: unknown;
    for (const part of stopOrder) {
      const step = this.steps.get(part);
      if (!step) continue;
      try {
        await step();
      } catch (err) {
        failure ??= err;
        this.logger.error({ err, part }, 'shutdown step failed');
      } finally {
        this.steps.delete(part);
      }
    }
    if (failure !== undefined) throw failure;
    this.logger.info('server stopped');
  }
}
