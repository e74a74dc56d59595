/**
 * The physical reference: one bidi method with identity serializers, served by the xDS server's own
 * gRPC server, writes one prebuilt Buffer, the size of a real EDS push, to N open streams, one per
 * proxy on that proxy's connection. Nothing is planned or encoded: this is the floor for the push
 * path, over the same connections (and so the same layout: `--conn`). A second kind of round has
 * every client answer with an ACK-sized message, the floor for a push that is ACKed.
 */
import type * as grpc from '@grpc/grpc-js';
import { rawBidiMethod } from '../shared/bidi-client.js';
import { rawPath, wallClockMs } from './protocol.js';
import { collectGarbage, cpuMs, max, median, until } from './stats.js';
import type { WorkerPool } from './workers.js';

export interface RawRound {
  readonly round: number;
  /** The first round warms up the JIT and is left out of the summary. */
  readonly warmup: boolean;
  /** The write loop over all streams (ms). */
  readonly writeMs: number;
  /** From the start of the write loop to the median / last client receipt (ms). */
  readonly p50Ms: number;
  readonly lastMs: number;
  readonly cpuMs: number;
  /** CPU the client workers used meanwhile, summed (ms). */
  readonly clientCpuMs: number;
  /** ACK mode: when the server had read every answer (ms from the write loop start). */
  readonly serverDoneMs?: number | undefined;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const rawService: grpc.ServiceDefinition = { stream: rawBidiMethod(rawPath) };

/**
 * N raw streams from the workers, served by `server` (the xDS server's, already listening);
 * `round` writes to all of them.
 */
export class RawBench {
  private readonly calls: grpc.ServerDuplexStream<Buffer, Buffer>[] = [];
  /** Messages written to every stream so far: message k is counted by the clients as `raw:<k>`. */
  private sent = 0;
  /** Answers (ACK mode) the server has read. */
  private answersRead = 0;

  constructor(
    private readonly pool: WorkerPool,
    private readonly payload: Buffer,
    server: grpc.Server,
  ) {
    server.addService(rawService, {
      stream: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
        let first = true;
        call.on('data', () => {
          if (first) this.calls.push(call);
          else this.answersRead++;
          first = false;
        });
        call.on('error', () => undefined);
      },
    });
  }

  /** Opens a raw stream beside each of the `clients` proxies' xDS streams. */
  async open(clients: number): Promise<void> {
    this.pool.broadcast({ kind: 'connect-raw' });
    await until(() => this.calls.length >= clients, `${clients} raw streams to open`, 120_000, 10);
  }

  /**
   * One round: the payload to every stream. With `ackBytes`, each client answers every message with
   * that many bytes (the size of a proxy's ACK) before it takes its time, and the round lasts until
   * the server has read every answer: the physical floor of a push that must be acknowledged.
   */
  async round(round: number, ackBytes = 0): Promise<RawRound> {
    this.pool.broadcast({ kind: 'raw-ack', bytes: ackBytes });
    await this.pool.gather('raw-ack', this.pool.size);
    this.pool.reset('raw-ack');
    collectGarbage();
    await sleep(100);
    const clientCpu0 = await this.pool.cpuMs();
    const cpu0 = process.cpuUsage();
    const answers0 = this.answersRead;
    const start = wallClockMs();
    for (const call of this.calls) call.write(this.payload);
    const writeMs = wallClockMs() - start;
    const times = await this.pool.gather(`raw:${++this.sent}`, this.calls.length);
    let serverDoneMs: number | undefined;
    if (ackBytes > 0) {
      await until(
        () => this.answersRead - answers0 >= this.calls.length,
        'the raw server to read every answer',
        60_000,
        1,
      );
      serverDoneMs = wallClockMs() - start;
    }
    const cpu = cpuMs(process.cpuUsage(cpu0));
    const clientCpuMs = (await this.pool.cpuMs()) - clientCpu0;
    const rel = times.map((t) => t - start);
    return {
      round,
      warmup: round === 1,
      writeMs,
      p50Ms: median(rel),
      lastMs: max(rel),
      cpuMs: cpu,
      clientCpuMs,
      serverDoneMs,
    };
  }

  /** Cancels the raw streams; the connections stay, they are the proxies'. */
  async close(): Promise<void> {
    this.pool.broadcast({ kind: 'close-raw' });
    await this.pool.gather('closed', this.pool.size);
    this.pool.reset('closed');
  }
}
