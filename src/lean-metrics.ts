import type { Registry } from 'prom-client';

/**
 * What prom-client's Registry reads of a registered metric (lib/registry.js: `name`, `get()` for
 * the exposition and JSON, `reset()`). Its typings admit only its own four classes; the
 * augmentation below says that it takes any metric of this shape, which is what its code does.
 */
export interface RegisteredMetric {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'histogram';
  readonly aggregator: 'sum';
  get(): Promise<{
    name: string;
    help: string;
    type: 'counter' | 'histogram';
    values: { labels: Readonly<Record<string, string | number>>; value: number }[];
    aggregator: 'sum';
  }>;
  reset(): void;
}

declare module 'prom-client' {
  interface Registry {
    registerMetric(metric: RegisteredMetric): void;
  }
}

interface Sample {
  readonly labels: Readonly<Record<string, string | number>>;
  readonly value: number;
  readonly metricName: string;
}

/*
 * Metrics for the xDS push path, which runs once per proxy per change: at a thousand proxies, the
 * label handling of prom-client's own Counter and Histogram was a tenth of isthmus's work per
 * push. These keep their values in plain numbers and hand prom-client's registry the samples its
 * own classes would (checked against them in the tests).
 */

/**
 * A histogram without labels, exported like prom-client's own. prom-client's `observe` builds
 * and validates a label object, hashes it and keys the bucket by the bound's string on every
 * call; this one finds the bucket and adds to three numbers.
 */
export class LeanHistogram implements RegisteredMetric {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly name: string;
  readonly help: string;
  private readonly bounds: readonly number[];
  /** Observations per bucket (not cumulative); the last one is +Inf. */
  private counts: Float64Array;
  private sum = 0;
  private count = 0;
  /** After `reset`, prom-client exports no sample until the next observation. */
  private cleared = false;

  constructor(opts: {
    name: string;
    help: string;
    buckets: readonly number[];
    registers: readonly Registry[];
  }) {
    this.name = opts.name;
    this.help = opts.help;
    this.bounds = [...opts.buckets].sort((a, b) => a - b);
    this.counts = new Float64Array(this.bounds.length + 1);
    for (const r of opts.registers) r.registerMetric(this);
  }

  observe(value: number): void {
    if (!Number.isFinite(value))
      throw new TypeError(`${this.name}: value is not a valid number: ${value}`);
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    this.counts[i]!++;
    this.sum += value;
    this.count++;
    this.cleared = false;
  }

  reset(): void {
    this.counts = new Float64Array(this.bounds.length + 1);
    this.sum = 0;
    this.count = 0;
    this.cleared = true;
  }

  /** What prom-client's registry reads (the shape of its Histogram's `get`). */
  async get(): Promise<{
    name: string;
    help: string;
    type: 'histogram';
    values: Sample[];
    aggregator: 'sum';
  }> {
    const values: Sample[] = [];
    if (this.cleared)
      return {
        name: this.name,
        help: this.help,
        type: this.type,
        values,
        aggregator: this.aggregator,
      };
    let cumulative = 0;
    this.bounds.forEach((le, i) => {
      cumulative += this.counts[i]!;
      values.push({ labels: { le }, value: cumulative, metricName: `${this.name}_bucket` });
    });
    values.push({ labels: { le: '+Inf' }, value: this.count, metricName: `${this.name}_bucket` });
    values.push({ labels: {}, value: this.sum, metricName: `${this.name}_sum` });
    values.push({ labels: {}, value: this.count, metricName: `${this.name}_count` });
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      values,
      aggregator: this.aggregator,
    };
  }
}

/**
 * A labelled counter whose samples are kept per label values in a Map: `inc` reads the label
 * values and adds, where prom-client's validates, sorts and hashes the label object on every call
 * (here the label names are checked once per new sample). `labels(...)` returns a child that calls
 * `inc` (looked up at call time, so a wrapper installed on `inc` sees it).
 */
export class LeanCounter<L extends string> implements RegisteredMetric {
  readonly type = 'counter';
  readonly aggregator = 'sum';
  readonly name: string;
  readonly help: string;
  private readonly labelNames: readonly L[];
  private readonly values = new Map<
    string,
    { labels: Readonly<Record<L, string>>; value: number }
  >();

  constructor(opts: {
    name: string;
    help: string;
    labelNames: readonly L[];
    registers: readonly Registry[];
  }) {
    if (opts.labelNames.length === 0)
      throw new Error(
        `${opts.name}: a LeanCounter has labels (use prom-client's Counter for one without)`,
      );
    this.name = opts.name;
    this.help = opts.help;
    this.labelNames = opts.labelNames;
    for (const r of opts.registers) r.registerMetric(this);
  }

  inc(labels: Readonly<Record<L, string>>, value = 1): void {
    if (!Number.isFinite(value) || value < 0)
      throw new TypeError(`${this.name}: a counter only goes up, by a finite number (${value})`);
    const names = this.labelNames;
    const key =
      names.length === 1 ? labels[names[0]!] : JSON.stringify(names.map((n) => labels[n]));
    const sample = this.values.get(key);
    if (sample) sample.value += value;
    else this.values.set(key, { labels: this.checkedLabels(labels), value });
  }

  /** The labels of a new sample: every label name given, as a string, and no other. */
  private checkedLabels(labels: Readonly<Record<L, string>>): Record<L, string> {
    for (const n of this.labelNames) {
      if (typeof labels[n] !== 'string')
        throw new TypeError(`${this.name}: label "${n}" is missing or not a string`);
    }
    const extra = Object.keys(labels).find(
      (k) => !(this.labelNames as readonly string[]).includes(k),
    );
    if (extra !== undefined)
      throw new TypeError(
        `${this.name}: added label "${extra}" is not included in the label names`,
      );
    return Object.fromEntries(this.labelNames.map((n) => [n, labels[n]])) as Record<L, string>;
  }

  labels(labels: Readonly<Record<L, string>>): { inc(value?: number): void } {
    return { inc: (value = 1) => this.inc(labels, value) };
  }

  reset(): void {
    this.values.clear();
  }

  /** What prom-client's registry reads (the shape of its Counter's `get`). */
  async get(): Promise<{
    name: string;
    help: string;
    type: 'counter';
    values: { labels: Record<string, string>; value: number }[];
    aggregator: 'sum';
  }> {
    const values = [...this.values.values()].map((s) => ({
      labels: { ...s.labels },
      value: s.value,
    }));
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      values,
      aggregator: this.aggregator,
    };
  }
}
