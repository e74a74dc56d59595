/**
 * The benchmarks' lean gRPC client (bench/shared/h2-bidi-client.ts) against a real grpc-js server:
 * messages both ways, the call's status from the trailers, RST_STREAM, and giving up connecting at
 * the deadline.
 */
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { envoyWindowBytes, rawBidiMethod } from '../../bench/shared/bidi-client.js';
import { H2BidiConnection, type BidiStream } from '../../bench/shared/h2-bidi-client.js';

const service: grpc.ServiceDefinition = {
  echo: rawBidiMethod('/bench.Test/Echo'),
  fail: rawBidiMethod('/bench.Test/Fail'),
};

const opts = (deadlineMs = 10_000) => ({
  windowBytes: envoyWindowBytes,
  maxMessageBytes: 4 * 1024 * 1024,
  deadline: Date.now() + deadlineMs,
});

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function startGrpc(): Promise<string> {
  const server = new grpc.Server();
  server.addService(service, {
    echo: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      call.on('data', (b: Buffer) => call.write(b));
      call.on('end', () => call.end());
    },
    fail: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      call.on('data', () =>
        call.emit('error', { code: grpc.status.PERMISSION_DENIED, details: 'no: 100% denied' }),
      );
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  cleanups.push(() => void server.forceShutdown());
  return `127.0.0.1:${port}`;
}

async function connect(address: string): Promise<H2BidiConnection> {
  const c = await H2BidiConnection.connect(address, opts());
  cleanups.push(() => c.close());
  return c;
}

/** Resolves with the stream's next `count` messages, rejects on its error; deadline 10 s. */
function nextMessages(stream: BidiStream, count: number): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const got: Buffer[] = [];
    const timer = setTimeout(() => reject(new Error(`${got.length} of ${count} messages`)), 10_000);
    stream.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    stream.on('data', (m) => {
      got.push(m);
      if (got.length === count) {
        clearTimeout(timer);
        resolve(got);
      }
    });
  });
}

function endError(stream: BidiStream): Promise<Error> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no error within 10 s')), 10_000);
    stream.on('error', (err) => {
      clearTimeout(timer);
      resolve(err);
    });
  });
}

describe('H2BidiConnection', () => {
  it('exchanges messages of any size with a grpc-js server, in order', async () => {
    const c = await connect(await startGrpc());
    const stream = c.stream('/bench.Test/Echo');
    const sent = [Buffer.from('a'), Buffer.alloc(0), Buffer.alloc(1_000_000, 7), Buffer.from('z')];
    const received = nextMessages(stream, sent.length);
    for (const m of sent) stream.write(m);
    expect((await received).map((m) => m.length)).toEqual([1, 0, 1_000_000, 1]);
    expect((await received)[2]!.equals(sent[2]!)).toBe(true);
    stream.cancel();
  });

  it('carries many calls on one connection', async () => {
    const c = await connect(await startGrpc());
    const streams = Array.from({ length: 300 }, () => c.stream('/bench.Test/Echo'));
    const replies = streams.map((s) => nextMessages(s, 1));
    streams.forEach((s, i) => s.write(Buffer.from(String(i))));
    expect((await Promise.all(replies)).map(([m]) => m!.toString())).toEqual(
      streams.map((_, i) => String(i)),
    );
    for (const s of streams) s.cancel();
  });

  it("reports the server's status and message from the trailers", async () => {
    const c = await connect(await startGrpc());
    const stream = c.stream('/bench.Test/Fail');
    const err = endError(stream);
    stream.write(Buffer.from('x'));
    expect((await err).message).toBe('7 PERMISSION_DENIED: no: 100% denied');
  });

  it('reports a method the server does not have (a trailers-only response)', async () => {
    const c = await connect(await startGrpc());
    const stream = c.stream('/bench.Test/Missing');
    const err = endError(stream);
    stream.write(Buffer.from('x'));
    expect((await err).message).toMatch(/^12 UNIMPLEMENTED: /);
  });

  it('reports a RST_STREAM with its code', async () => {
    const server = http2.createServer();
    server.on('stream', (s) => {
      s.on('error', () => undefined); // Node reports the reset it sent on the server's side too
      s.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
    const { port } = server.address() as AddressInfo;
    const c = await connect(`127.0.0.1:${port}`);
    const stream = c.stream('/bench.Test/Echo');
    const err = endError(stream);
    stream.write(Buffer.from('x'));
    expect((await err).message).toMatch(/^13 INTERNAL: received RST_STREAM with code 2\b/);
  });

  it('gives up connecting at the deadline with the last failure', async () => {
    const server = http2.createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    await new Promise<void>((r) => server.close(() => r()));
    await expect(H2BidiConnection.connect(`127.0.0.1:${port}`, opts(1_500))).rejects.toThrow(
      /could not connect to 127\.0\.0\.1:\d+: .*ECONNREFUSED/,
    );
  });
});
