/**
 * The push path's histograms are LeanHistograms: a scrape must read exactly what prom-client's
 * own Histogram exports for the same observations.
 */
import { describe, expect, it } from 'vitest';
import { Histogram, Registry } from 'prom-client';
import { LeanHistogram } from '../../src/lean-histogram.js';

const buckets = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
const observations = [0, 0.0004, 0.001, 0.0010001, 0.007, 0.05, 0.3, 2.5, 2.6, 40, 0.049999];

function pair(): { lean: LeanHistogram; reference: Histogram; leanRegistry: Registry; referenceRegistry: Registry } {
  const leanRegistry = new Registry();
  const referenceRegistry = new Registry();
  const opts = { name: 'isthmus_test_seconds', help: 'A test histogram.', buckets };
  return {
    lean: new LeanHistogram({ ...opts, registers: [leanRegistry] }),
    reference: new Histogram({ ...opts, registers: [referenceRegistry] }),
    leanRegistry,
    referenceRegistry,
  };
}

describe('LeanHistogram', () => {
  it('exports what a prom-client Histogram exports, empty, after observations, and after a reset', async () => {
    const { lean, reference, leanRegistry, referenceRegistry } = pair();
    expect(await leanRegistry.metrics()).toBe(await referenceRegistry.metrics());
    for (const v of observations) {
      lean.observe(v);
      reference.observe(v);
    }
    expect(await leanRegistry.metrics()).toBe(await referenceRegistry.metrics());
    // The JSON form too, but for prom-client's exemplar slots (null: isthmus records no exemplars).
    const withoutExemplars = (metrics: Awaited<ReturnType<Registry['getMetricsAsJSON']>>) =>
      metrics.map((m) => ({ ...m, values: m.values.map((v) => ({ labels: v.labels, value: v.value, metricName: (v as { metricName?: string }).metricName })) }));
    expect(withoutExemplars(await leanRegistry.getMetricsAsJSON())).toEqual(withoutExemplars(await referenceRegistry.getMetricsAsJSON()));
    leanRegistry.resetMetrics();
    referenceRegistry.resetMetrics();
    lean.observe(0.02);
    reference.observe(0.02);
    expect(await leanRegistry.metrics()).toBe(await referenceRegistry.metrics());
  });

  it('refuses a value that is not a finite number, as prom-client does, and records nothing for it', async () => {
    const { lean, leanRegistry } = pair();
    expect(() => lean.observe(Number.NaN)).toThrow(/isthmus_test_seconds.*not a valid number/);
    expect(() => lean.observe(Number.POSITIVE_INFINITY)).toThrow(TypeError);
    expect(await leanRegistry.metrics()).toMatch(/^isthmus_test_seconds_count 0$/m);
  });
});
