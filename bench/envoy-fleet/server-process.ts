/**
 * The isthmus server under test: a real `isthmus server` process (test/helpers/mesh-server.ts)
 * started with the inspector on 127.0.0.1:0, so the benchmark can force a full GC in it before
 * sampling memory, and read its CPU time in microseconds (`process.cpuUsage()`: user + system of
 * all its threads, what /proc/<pid>/stat counts in 10 ms ticks). RSS comes from /proc.
 */
import { readFileSync } from 'node:fs';
import { WebSocket } from 'ws';
import { type MeshProcess, startMeshProcess } from '../../test/helpers/mesh-server.js';
import { waitFor } from '../../test/helpers/wait.js';

/**
 * CPU time (user + system, all threads) of a process, in ms; /proc counts in clock ticks (10 ms).
 */
export function processCpuMs(pid: number): number {
  // The command name may hold spaces and parentheses; the fields start after the last ')'.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of proc(5), 12 and 13 counted from the state field.
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/**
 * A `/proc/<pid>/status` or `/proc/<pid>/smaps_rollup` field in bytes (`VmRSS`, `VmHWM`, `Pss`, …).
 */
export function procKb(pid: number, file: 'status' | 'smaps_rollup', field: string): number {
  const text = readFileSync(`/proc/${pid}/${file}`, 'utf8');
  const kb = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1];
  if (kb === undefined) throw new Error(`no ${field} in /proc/${pid}/${file}`);
  return Number(kb) * 1024;
}

export interface ServerMemory {
  readonly rss: number;
  readonly heapUsed: number;
  /** `external` (array buffers included): Buffers and other memory outside the JS heap. */
  readonly external: number;
}

export interface ServerUnderTest {
  readonly node: MeshProcess;
  readonly pid: number;
  /** CPU time so far (user + system, all threads), ms. */
  cpuMs(): Promise<number>;
  /** Memory after a forced full GC in the server (median of `samples`). */
  memoryAfterGc(samples?: number): Promise<ServerMemory>;
  rss(): number;
  /** Peak RSS since the server started. */
  peakRss(): number;
  /**
   * The sum of every series of a counter or gauge on the server's `/metrics` (0 if it has none).
   */
  metric(name: string): Promise<number>;
  /**
   * Resolves once the server used less than `quietMsPerS` of CPU per second over half a second:
   * after registrations it issues leaves and builds every registered proxy's view, and idle
   * figures must not count that.
   */
  settle(quietMsPerS?: number): Promise<void>;
  close(): Promise<void>;
}

/** One Chrome DevTools Protocol session over the server's inspector WebSocket. */
class Inspector {
  private nextId = 0;
  private readonly pending = new Map<number, (result: unknown) => void>();

  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const msg = JSON.parse(String(data)) as { id?: number; result?: unknown };
      if (msg.id !== undefined) this.pending.get(msg.id)?.(msg.result);
    });
  }

  static async open(url: string): Promise<Inspector> {
    const ws = new WebSocket(url);
    await new Promise<void>((resolve, reject) =>
      ws.once('open', () => resolve()).once('error', reject),
    );
    return new Inspector(ws);
  }

  call(method: string, params: Record<string, unknown> = {}): Promise<unknown> {
    const id = ++this.nextId;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }

  close(): void {
    this.ws.close();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Starts `isthmus server` with the given flags (camelCase, as startMeshProcess takes them). */
export async function startServerUnderTest(
  flags: Record<string, string>,
): Promise<ServerUnderTest> {
  const node = await startMeshProcess(flags, { env: { NODE_OPTIONS: '--inspect=127.0.0.1:0' } });
  const pid = node.proc.child.pid!;
  const url = await waitFor(() => /ws:\/\/127\.0\.0\.1:\d+\/\S+/.exec(node.proc.stderr())?.[0], {
    timeoutMs: 10_000,
    what: "the server's inspector URL",
  });
  const inspector = await Inspector.open(url);
  const evaluate = async (expression: string) =>
    (
      (await inspector.call('Runtime.evaluate', { expression, returnByValue: true })) as {
        result: { value: string };
      }
    ).result.value;
  const cpuMs = async () => {
    const { user, system } = JSON.parse(
      await evaluate('JSON.stringify(process.cpuUsage())'),
    ) as NodeJS.CpuUsage;
    return (user + system) / 1000;
  };
  return {
    node,
    pid,
    cpuMs,
    rss: () => procKb(pid, 'status', 'VmRSS'),
    peakRss: () => procKb(pid, 'status', 'VmHWM'),
    async metric(name) {
      const text = await (await fetch(`http://${node.httpAddress}/metrics`)).text();
      const series = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm');
      return [...text.matchAll(series)].reduce((sum, m) => sum + Number(m[1]), 0);
    },
    async settle(quietMsPerS = 20) {
      const windowMs = 500;
      const deadline = Date.now() + 120_000;
      for (;;) {
        const cpu0 = await cpuMs();
        await sleep(windowMs);
        if ((((await cpuMs()) - cpu0) / windowMs) * 1000 < quietMsPerS) return;
        if (Date.now() > deadline)
          throw new Error(
            `the server did not go quiet (under ${quietMsPerS} ms of CPU per second) within 120 s`,
          );
      }
    },
    async memoryAfterGc(samples = 5) {
      const taken: ServerMemory[] = [];
      for (let i = 0; i < samples; i++) {
        await inspector.call('HeapProfiler.collectGarbage');
        await sleep(50);
        const m = JSON.parse(await evaluate('JSON.stringify(process.memoryUsage())')) as {
          heapUsed: number;
          external: number;
        };
        taken.push({
          rss: procKb(pid, 'status', 'VmRSS'),
          heapUsed: m.heapUsed,
          external: m.external,
        });
      }
      const mid = (k: keyof ServerMemory) =>
        taken.map((m) => m[k]).sort((a, b) => a - b)[samples >> 1]!;
      return { rss: mid('rss'), heapUsed: mid('heapUsed'), external: mid('external') };
    },
    async close() {
      inspector.close();
      await node.close();
    },
  };
}
