/**
 * Everything one `isthmus demo` started, so that any exit (done, failed step, Ctrl-C) stops it all:
 * probes and servers, the stand-ins for proxies, and the temporary directory with data and logs.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { createLogger, type Logger } from '../log.js';

export class DemoRun {
  readonly workDir: string;
  readonly logFile: string;
  readonly logger: Logger;
  private readonly stops: (() => Promise<void>)[] = [];
  private stopping: Promise<void> | undefined;

  constructor() {
    this.workDir = mkdtempSync(join(tmpdir(), 'isthmus-demo-'));
    this.logFile = join(this.workDir, 'isthmus.log');
    this.logger = createLogger('info', pino.destination({ dest: this.logFile, sync: true }));
  }

  /**
   * Registers something to stop; stopped in reverse order of registration. Something that comes up
   * after the run began to stop (a step still under way at Ctrl-C) is stopped at once.
   */
  own<T>(thing: T, stop: (t: T) => Promise<void> | void): T {
    if (this.stopping) void (async () => stop(thing))().catch(() => undefined);
    else this.stops.push(async () => stop(thing));
    return thing;
  }

  get stopped(): boolean {
    return this.stopping !== undefined;
  }

  /** Stops everything once (each part's failure is ignored) and removes the temporary directory. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      for (const stop of this.stops.splice(0).reverse()) await stop().catch(() => undefined);
      rmSync(this.workDir, { recursive: true, force: true });
    })();
    return this.stopping;
  }
}
