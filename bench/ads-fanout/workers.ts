/**
 * The parent's side of the client workers: forks them, routes their reports into buckets by key,
 * and lets the benchmark wait, with a deadline, until a bucket holds the expected number of
 * timestamps. A worker error or exit fails every wait at once.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { FromWorker, ReportKey, ToWorker } from './protocol.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

interface Waiter {
  check(): void;
  fail(err: Error): void;
}

export class WorkerPool {
  private readonly buckets = new Map<ReportKey, number[]>();
  private readonly waiters = new Set<Waiter>();
  private failure: Error | undefined;
  private stopping = false;
  private cpuQueries = 0;

  private constructor(private readonly children: ChildProcess[]) {
    children.forEach((child, i) => {
      child.on('message', (msg: FromWorker) => this.receive(i, msg));
      child.on('error', (err) => this.fail(new Error(`client worker ${i}: ${err.message}`)));
      child.on('exit', (code, signal) => {
        if (!this.stopping)
          this.fail(new Error(`client worker ${i} exited (code ${code}, signal ${signal})`));
      });
    });
  }

  /** Forks `count` workers and waits until each has loaded. */
  static async start(count: number, timeoutMs = 60_000): Promise<WorkerPool> {
    const children = Array.from({ length: count }, () =>
      fork('bin/run-ts.js', ['bench/ads-fanout/client-worker.ts'], {
        cwd: repoRoot,
        execArgv: [],
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      }),
    );
    const pool = new WorkerPool(children);
    try {
      await pool.gather('ready', count, timeoutMs);
    } catch (err) {
      pool.stop();
      throw err;
    }
    return pool;
  }

  get size(): number {
    return this.children.length;
  }

  /** CPU time (user + system, all threads) the workers have used so far, summed (ms). */
  async cpuMs(): Promise<number> {
    const key = `cpu:${++this.cpuQueries}` as const;
    this.broadcast({ kind: 'cpu', key });
    const times = await this.gather(key, this.children.length, 10_000);
    this.reset(key);
    return times.reduce((a, b) => a + b, 0);
  }

  /** Throws once any worker has failed; a send that cannot be delivered fails the pool. */
  send(worker: number, msg: ToWorker): void {
    if (this.failure) throw this.failure;
    this.children[worker]!.send(msg, (err) => {
      if (err) this.fail(new Error(`client worker ${worker}: ${err.message}`));
    });
  }

  broadcast(msg: ToWorker): void {
    for (let i = 0; i < this.children.length; i++) this.send(i, msg);
  }

  /** Resolves with the first `count` timestamps reported under `key`; rejects at the deadline. */
  gather(key: ReportKey, count: number, timeoutMs = 60_000): Promise<number[]> {
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        check: () => {
          const times = this.buckets.get(key) ?? [];
          if (times.length < count) return;
          done();
          resolve(times.slice(0, count));
        },
        fail: (err) => {
          done();
          reject(err);
        },
      };
      const timer = setTimeout(() => {
        const have = this.buckets.get(key)?.length ?? 0;
        waiter.fail(
          new Error(
            `timed out after ${timeoutMs / 1000} s waiting for "${key}" reports: ${have} of ${count} arrived`,
          ),
        );
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
      };
      if (this.failure) return waiter.fail(this.failure);
      this.waiters.add(waiter);
      waiter.check();
    });
  }

  /**
   * Lets the workers exit on their own (they exit when the IPC channel closes, which also lets
   * `--cpu-prof` write its profile), killing whichever is still there after `graceMs`.
   */
  async close(graceMs = 5_000): Promise<void> {
    this.stopping = true;
    const alive = this.children.filter((c) => c.exitCode === null && c.signalCode === null);
    const exited = alive.map(
      (c) => new Promise<void>((resolve) => c.once('exit', () => resolve())),
    );
    for (const c of alive) if (c.connected) c.disconnect();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(exited),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs))),
    ]);
    clearTimeout(timer);
    this.stop();
  }

  /** Kills every worker at once (error paths and process exit). */
  stop(): void {
    this.stopping = true;
    for (const child of this.children)
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }

  private receive(worker: number, msg: FromWorker): void {
    if (msg.kind === 'error') {
      this.fail(new Error(`client worker ${worker}: ${msg.message}`));
      return;
    }
    let times = this.buckets.get(msg.key);
    if (!times) this.buckets.set(msg.key, (times = []));
    times.push(...msg.times);
    for (const w of [...this.waiters]) w.check();
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const w of [...this.waiters]) w.fail(err);
  }

  /** Forgets a bucket so its key can be gathered again (e.g. `closed` once per phase). */
  reset(key: ReportKey): void {
    this.buckets.delete(key);
  }
}
