/**
 * The physical reference: a bare grpc-js server with one bidi method and identity serializers
 * writes one prebuilt Buffer, the size of a real EDS push, to N open streams in the same client
 * workers. Nothing is planned or encoded: this is the floor for the push path. A second kind of
 * round has every client answer with an ACK-sized message, the floor for a push that is ACKed.
 */
import * as grpc from '@grpc/grpc-js';
import { xdsChannelOptions } from '../../src/xds/server.js';
import { rawPath, wallClockMs, type ConnectionMode } from './protocol.js';
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

const identity = (b: Buffer): Buffer => b;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const rawService: grpc.ServiceDefinition = {
  stream: {
    path: rawPath,
    requestStream: true,
    responseStream: true,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};

/** A bare grpc-js server holding N raw streams from the workers; `round` writes to all of them. */
export class RawBench {
  private readonly calls: grpc.ServerDuplexStream<Buffer, Buffer>[] = [];
  /** Messages written to every stream so far: message k is counted by the clients as `raw:<k>`. */
  private sent = 0;
  /** Answers (ACK mode) the server has read. */
  private answersRead = 0;
  private readonly server = new grpc.Server(xdsChannelOptions);

  constructor(
    private readonly pool: WorkerPool,
    private readonly payload: Buffer,
  ) {
    this.server.addService(rawService, {
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

  async open(clients: number, conn: ConnectionMode): Promise<void> {
    // Plaintext on both sides (xds-phase.ts constructs its XdsServer without TLS): comparable.
    const port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
    const per = Math.ceil(clients / this.pool.size);
    for (let w = 0; w < this.pool.size; w++) {
      this.pool.send(w, {
        kind: 'connect-raw',
        address: `127.0.0.1:${port}`,
        conn,
        count: Math.max(0, Math.min(per, clients - w * per)),
      });
    }
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

  async close(): Promise<void> {
    this.pool.broadcast({ kind: 'close-raw' });
    await this.pool.gather('closed', this.pool.size);
    this.pool.reset('closed');
    this.server.forceShutdown();
  }

  abort(): void {
    this.server.forceShutdown();
  }
}
