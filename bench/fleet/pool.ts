/**
 * The parent's side of the fleet benchmarks' client workers: forks them, sends each a command and
 * waits, with a deadline, for its answer. A worker that fails or exits fails every wait at once.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Command, Counters, FromWorker, HeldState } from './protocol.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

interface Pending {
  resolve(value: unknown): void;
  reject(err: Error): void;
}

export class FleetPool {
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private failure: Error | undefined;
  private stopping = false;

  private constructor(private readonly children: ChildProcess[]) {
    children.forEach((child, i) => {
      child.on('message', (msg: FromWorker) => this.receive(i, msg));
      child.on('exit', (code, signal) => {
        if (!this.stopping) this.fail(new Error(`client worker ${i} exited (${code ?? signal})`));
      });
    });
  }

  /** Forks `count` workers and waits until each has loaded. */
  static async start(count: number): Promise<FleetPool> {
    const children = Array.from({ length: count }, () =>
      fork('bin/run-ts.js', ['bench/fleet/worker.ts'], {
        cwd: repoRoot,
        execArgv: process.env.FLEET_WORKER_PROF
          ? ['--cpu-prof', `--cpu-prof-dir=${process.env.FLEET_WORKER_PROF}`]
          : [],
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      }),
    );
    const pool = new FleetPool(children);
    const ready = children.map(
      (child) =>
        new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error('a client worker did not load')), 60_000);
          child.once('message', () => {
            clearTimeout(timer);
            resolve();
          });
        }),
    );
    try {
      await Promise.all(ready);
    } catch (err) {
      pool.stop();
      throw err;
    }
    return pool;
  }

  get size(): number {
    return this.children.length;
  }

  /** Sends `command` to worker `w` and resolves with its answer; rejects at the deadline. */
  ask<T>(w: number, command: Command, timeoutMs = 120_000): Promise<T> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`client worker ${w} did not answer "${command.kind}" in ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.children[w]!.send({ id, command });
    });
  }

  /** Sends `command` to every worker and resolves with their answers, in worker order. */
  all<T>(command: Command | ((w: number) => Command), timeoutMs?: number): Promise<T[]> {
    return Promise.all(
      this.children.map((_, w) =>
        this.ask<T>(w, typeof command === 'function' ? command(w) : command, timeoutMs),
      ),
    );
  }

  /** Opens the proxies named `ids` spread over the workers (proxy i in worker i mod W). */
  async connect(address: string, ids: readonly string[], perConnection = 1): Promise<void> {
    await this.all((w) => ({
      kind: 'connect',
      address,
      perConnection,
      ids: ids.filter((_, i) => i % this.size === w),
    }));
  }

  async readyCount(): Promise<number> {
    return (await this.all<number>({ kind: 'ready-count' })).reduce((a, b) => a + b, 0);
  }

  async held(): Promise<HeldState[]> {
    return (await this.all<HeldState[]>({ kind: 'held' })).flat();
  }

  /** Every worker's counters summed; `reset` starts them again from zero. */
  async counters(reset = false): Promise<Counters> {
    const each = await this.all<Counters>({ kind: 'counters', reset });
    const responses: Record<string, number> = {};
    for (const c of each)
      for (const [t, n] of Object.entries(c.responses)) responses[t] = (responses[t] ?? 0) + n;
    const sum = (f: (c: Counters) => number) => each.reduce((a, c) => a + f(c), 0);
    return {
      resources: sum((c) => c.resources),
      bytes: sum((c) => c.bytes),
      responses,
      reconnects: sum((c) => c.reconnects),
      streamErrors: sum((c) => c.streamErrors),
      staleData: sum((c) => c.staleData),
      lastError: each.map((c) => c.lastError).find((e) => e !== '') ?? '',
    };
  }

  /** CPU the workers have used so far, summed (ms). */
  async cpuMs(): Promise<number> {
    return (await this.all<number>({ kind: 'cpu' })).reduce((a, b) => a + b, 0);
  }

  /**
   * Closes every proxy, then lets the workers exit on their own (they exit when the IPC channel
   * closes, which also lets `--cpu-prof` write its profile), killing whichever is left after 5 s.
   */
  async close(): Promise<void> {
    try {
      await this.all({ kind: 'close' }, 30_000);
      this.stopping = true;
      const exited = this.children
        .filter((c) => c.exitCode === null && c.signalCode === null)
        .map((c) => {
          const gone = new Promise<void>((resolve) => c.once('exit', () => resolve()));
          c.disconnect();
          return gone;
        });
      await Promise.race([Promise.all(exited), new Promise((r) => setTimeout(r, 5_000))]);
    } finally {
      this.stop();
    }
  }

  stop(): void {
    this.stopping = true;
    for (const child of this.children)
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }

  private receive(worker: number, msg: FromWorker): void {
    if (!msg.ok && msg.id === -1) {
      this.fail(new Error(`client worker ${worker}: ${msg.message}`));
      return;
    }
    const p = this.pending.get(msg.id);
    if (!p) return;
    this.pending.delete(msg.id);
    if (msg.ok) p.resolve(msg.value);
    else p.reject(new Error(`client worker ${worker}: ${msg.message}`));
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }
}
