import type { Metrics } from '../../metrics.js';
import { allTypeUrls, shortName } from '../types.js';

/**
 * The push counter's child per ADS type (`isthmus_xds_pushes_total{type}`), resolved once per
 * server: a push to thousands of streams counts without handling a label per response (§10).
 */
export class PushCounters {
  private readonly byIndex: readonly { inc(): void }[];

  constructor(metrics: Metrics) {
    this.byIndex = allTypeUrls.map((t) => metrics.xdsPushes.labels({ type: shortName[t] }));
  }

  /** One response of the type at `index` (see PushStep.index) was written. */
  pushed(index: number): void {
    this.byIndex[index]?.inc();
  }
}
