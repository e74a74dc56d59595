/**
 * The push path's metrics are LeanCounters and LeanHistograms: a scrape must read exactly what
 * prom-client's own Counter and Histogram export for the same calls.
 */
import { describe, expect, it } from 'vitest';
import { Counter, Histogram, Registry } from 'prom-client';
import { LeanCounter, LeanHistogram } from '../../src/lean-metrics.js';

const buckets = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
const observations = [0, 0.0004, 0.001, 0.0010001, 0.007, 0.05, 0.3, 2.5, 2.6, 40, 0.049999];

function pair(): {
  lean: LeanHistogram;
  reference: Histogram;
  leanRegistry: Registry;
  referenceRegistry: Registry;
} {
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
      metrics.map((m) => ({
        ...m,
        values: m.values.map((v) => ({
          labels: v.labels,
          value: v.value,
          metricName: (v as { metricName?: string }).metricName,
        })),
      }));
    expect(withoutExemplars(await leanRegistry.getMetricsAsJSON())).toEqual(
      withoutExemplars(await referenceRegistry.getMetricsAsJSON()),
    );
    leanRegistry.resetMetrics();
    referenceRegistry.resetMetrics();
    expect(await leanRegistry.metrics()).toBe(await referenceRegistry.metrics());
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

describe('LeanCounter', () => {
  function counters(): {
    lean: LeanCounter<'type'>;
    reference: Counter<'type'>;
    leanRegistry: Registry;
    referenceRegistry: Registry;
  } {
    const leanRegistry = new Registry();
    const referenceRegistry = new Registry();
    const opts = {
      name: 'isthmus_test_total',
      help: 'A test counter.',
      labelNames: ['type'] as const,
    };
    return {
      lean: new LeanCounter({ ...opts, registers: [leanRegistry] }),
      reference: new Counter({ ...opts, registers: [referenceRegistry] }),
      leanRegistry,
      referenceRegistry,
    };
  }

  it('exports what a prom-client Counter exports, through inc and through labelled children, and after a reset', async () => {
    const { lean, reference, leanRegistry, referenceRegistry } = counters();
    expect(await leanRegistry.metrics()).toBe(await referenceRegistry.metrics());
    for (const c of [lean, reference] as const) {
      c.inc({ type: 'EDS' });
      c.inc({ type: 'CDS' }, 2.5);
      const eds = c.labels({ type: 'EDS' });
      eds.inc();
      eds.inc(3);
    }
    expect(await leanRegistry.metrics()).toBe(await referenceRegistry.metrics());
    expect(await leanRegistry.getMetricsAsJSON()).toEqual(
      await referenceRegistry.getMetricsAsJSON(),
    );
    leanRegistry.resetMetrics();
    referenceRegistry.resetMetrics();
    expect(await leanRegistry.metrics()).toBe(await referenceRegistry.metrics());
    lean.inc({ type: 'LDS' });
    reference.inc({ type: 'LDS' });
    expect(await leanRegistry.metrics()).toBe(await referenceRegistry.metrics());
  });

  it('children call inc as it is when they are used (a wrapper installed later sees them)', () => {
    const { lean } = counters();
    const child = lean.labels({ type: 'EDS' });
    const seen: string[] = [];
    const inc = lean.inc.bind(lean);
    lean.inc = (labels, value) => {
      seen.push(labels.type);
      inc(labels, value);
    };
    child.inc();
    expect(seen).toEqual(['EDS']);
  });

  it('refuses a decrease, a non-finite amount, a missing label and an unknown one, and records nothing for them', async () => {
    const { lean, leanRegistry } = counters();
    expect(() => lean.inc({ type: 'EDS' }, -1)).toThrow(/isthmus_test_total.*only goes up/);
    expect(() => lean.inc({ type: 'EDS' }, Number.NaN)).toThrow(TypeError);
    expect(() => lean.inc({} as { type: string })).toThrow(/label "type" is missing/);
    expect(() => lean.inc({ type: 'EDS', proxy: 'p1' } as { type: string })).toThrow(
      /label "proxy" is not included/,
    );
    expect(await leanRegistry.metrics()).not.toMatch(/^isthmus_test_total\{/m);
    expect(
      () =>
        new LeanCounter({
          name: 'isthmus_unlabelled_total',
          help: 'h',
          labelNames: [],
          registers: [],
        }),
    ).toThrow(/has labels/);
  });
});
