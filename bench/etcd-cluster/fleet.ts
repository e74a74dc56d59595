/**
 * The parent's side of bench:etcd-cluster's fake proxies: forks the workers (proxy-worker.ts),
 * gives each a share of the proxies, collects their reports by key, and waits, with a deadline,
 * until a key has the timestamps expected. A worker that fails or exits fails every wait.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { waitFor } from '../../test/helpers/wait.js';
import type { FromProxyWorker, ProxyReportKey, ToProxyWorker } from './proxy-worker.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

export interface FleetSpec {
  readonly addresses: readonly string[];
  readonly ids: readonly string[];
  /** The server each proxy starts on (index into `addresses`). */
  readonly homes: readonly number[];
  readonly markerPrefix: string;
  readonly markerPortBase: number;
}

export class Fleet {
  private readonly reports = new Map<ProxyReportKey, number[]>();
  private failure: Error | undefined;
  private stopping = false;

  private constructor(private readonly children: readonly ChildProcess[]) {
    children.forEach((child, i) => {
      child.on('message', (msg: FromProxyWorker) => {
        if (msg.kind === 'error') this.failure ??= new Error(`proxy worker ${i}: ${msg.message}`);
        else this.reports.set(msg.key, [...(this.reports.get(msg.key) ?? []), ...msg.times]);
      });
      child.on('exit', (code, signal) => {
        if (!this.stopping)
          this.failure ??= new Error(`proxy worker ${i} exited (code ${code}, signal ${signal})`);
      });
    });
  }

  /** Forks `workers` processes and connects the proxies, proxy i in worker i mod workers. */
  static start(workers: number, spec: FleetSpec): Fleet {
    const children = Array.from({ length: workers }, () =>
      fork('bin/run-ts.js', ['bench/etcd-cluster/proxy-worker.ts'], {
        cwd: repoRoot,
        execArgv: [],
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      }),
    );
    children.forEach((child, w) => {
      const mine = spec.ids.map((_, i) => i).filter((i) => i % workers === w);
      const msg: ToProxyWorker = {
        kind: 'connect',
        addresses: spec.addresses,
        ids: mine.map((i) => spec.ids[i]!),
        homes: mine.map((i) => spec.homes[i]!),
        markerPrefix: spec.markerPrefix,
        markerPortBase: spec.markerPortBase,
      };
      child.send(msg);
    });
    return new Fleet(children);
  }

  times(key: ProxyReportKey): readonly number[] {
    return this.reports.get(key) ?? [];
  }

  /** Waits until `count` proxies reported `key`; resolves with their timestamps. */
  async gather(key: ProxyReportKey, count: number, timeoutMs: number): Promise<number[]> {
    await waitFor(
      () => {
        if (this.failure) throw this.failure;
        return this.times(key).length >= count;
      },
      { timeoutMs, intervalMs: 10, what: `${count} proxies to report ${key}` },
    );
    return [...this.times(key)];
  }

  stop(): void {
    this.stopping = true;
    for (const child of this.children) {
      if (child.connected) child.send({ kind: 'close' } satisfies ToProxyWorker);
      setTimeout(() => child.kill('SIGKILL'), 2_000).unref();
    }
  }
}
