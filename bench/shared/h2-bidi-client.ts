/**
 * A lean gRPC bidi-stream client directly on node:http2, for benchmark fake proxies that share the
 * machine's cores with the server under test. Real Envoys use a C++ gRPC client on other hosts; the
 * grpc-js client's per-message work (call stack, interceptors, filters, status handling) would
 * otherwise take CPU from the server being measured (issue 14, bench/README.md).
 *
 * It speaks what gRPC over HTTP/2 requires and no more (PROTOCOL-HTTP2 in grpc/grpc): a POST with
 * `content-type: application/grpc` and `te: trailers`, length-prefixed messages
 * (grpc-frame-decoder.ts), and the call's end from `grpc-status` / `grpc-message` in the trailers
 * (or a trailers-only response), or from RST_STREAM. No compression, metadata, deadlines or
 * retries: the benchmarks need none.
 */
import { EventEmitter } from 'node:events';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { frameMessage, GrpcFrameDecoder } from './grpc-frame-decoder.js';

const {
  NGHTTP2_CANCEL,
  NGHTTP2_FLAG_END_STREAM,
  NGHTTP2_NO_ERROR,
  NGHTTP2_REFUSED_STREAM,
  NGHTTP2_ENHANCE_YOUR_CALM,
} = http2.constants;

/** gRPC status names by code (grpc/grpc doc/statuscodes.md), for error messages. */
const statusNames = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
];

/** What the fake proxies need of a bidi stream; grpc-js's ClientDuplexStream has the same shape. */
export interface BidiStream {
  /** Sends one serialized message. */
  write(message: Buffer): void;
  /** Ends the call from the client side (RST_STREAM CANCEL); no 'error' follows. */
  cancel(): void;
  /** 'data': one whole received message; 'error': the call ended with a non-OK status. */
  on(event: 'data', listener: (message: Buffer) => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
}

export interface H2ConnectOptions {
  /**
   * Receive window of each stream (SETTINGS_INITIAL_WINDOW_SIZE) and of the connection
   * (WINDOW_UPDATE on stream 0), bytes.
   */
  readonly windowBytes: number;
  readonly maxMessageBytes: number;
  /** Stop retrying at this time (`Date.now()` ms); the returned promise then rejects. */
  readonly deadline: number;
}

/**
 * grpc-js's reconnect backoff (its `grpc.initial_reconnect_backoff_ms` default and gRPC's
 * connection-backoff.md multiplier and jitter), so connection set-up paces as it did with grpc-js.
 */
const backoff = { initialMs: 1_000, multiplier: 1.6, jitter: 0.2, maxMs: 120_000 } as const;

/**
 * One HTTP/2 connection to a gRPC server (`host:port`, plaintext). `connect` retries a refused or
 * reset connection (thousands set up at once overflow the server's accept queue) with backoff until
 * the deadline, and resolves once the server's SETTINGS have arrived.
 */
export class H2BidiConnection {
  /** Why the connection failed or is going away, for the errors of the streams it takes down. */
  private failure: string | undefined;

  private constructor(
    private readonly session: http2.ClientHttp2Session,
    private readonly maxMessageBytes: number,
  ) {
    session.on('error', (err: Error) => {
      this.failure ??= `connection error: ${err.message}`;
    });
    session.on('goaway', (code: number) => {
      this.failure ??= `GOAWAY with code ${code}`;
    });
    session.on('close', () => {
      this.failure ??= 'connection closed';
    });
  }

  static async connect(address: string, opts: H2ConnectOptions): Promise<H2BidiConnection> {
    let delay: number = backoff.initialMs;
    for (;;) {
      try {
        const session = await connectOnce(address, opts);
        return new H2BidiConnection(session, opts.maxMessageBytes);
      } catch (err) {
        const wait = delay * (1 + backoff.jitter * (Math.random() * 2 - 1));
        if (Date.now() + wait >= opts.deadline)
          throw new Error(`could not connect to ${address}: ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, wait));
        delay = Math.min(delay * backoff.multiplier, backoff.maxMs);
      }
    }
  }

  /** Opens a bidi call of method `path` (`/package.Service/Method`). */
  stream(path: string): BidiStream {
    let req: http2.ClientHttp2Stream;
    try {
      req = this.session.request(
        {
          ':method': 'POST',
          ':path': path,
          'content-type': 'application/grpc',
          te: 'trailers',
        },
        { endStream: false },
      );
    } catch (err) {
      return new FailedStream(
        `${this.failure ?? 'connection unusable'}: ${(err as Error).message}`,
      );
    }
    return new H2BidiStream(req, this.maxMessageBytes, () => this.failure);
  }

  /** Closes the connection once its streams have ended (cancel them first). */
  close(): void {
    this.session.close();
  }
}

/** One attempt: resolves with a session whose server has sent its SETTINGS, rejects on failure. */
function connectOnce(address: string, opts: H2ConnectOptions): Promise<http2.ClientHttp2Session> {
  const { hostname, port } = new URL(`http://${address}`);
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://${address}`, {
      // Small writes (an ACK) go out at once, as grpc-js's socket does (setNoDelay).
      createConnection: () => net.connect({ host: hostname, port: Number(port), noDelay: true }),
      settings: { initialWindowSize: opts.windowBytes, enablePush: false },
      // Node refuses new streams once a session buffers this much (MB); grpc-js lifts the limit too.
      maxSessionMemory: Number.MAX_SAFE_INTEGER,
    });
    const timer = setTimeout(
      () => fail(new Error('connection deadline passed')),
      Math.max(0, opts.deadline - Date.now()),
    );
    const fail = (err: Error) => {
      clearTimeout(timer);
      session.removeAllListeners();
      session.on('error', () => undefined);
      session.destroy();
      reject(err);
    };
    session.once('error', fail);
    session.once('close', () => fail(new Error('connection closed before SETTINGS')));
    session.once('remoteSettings', () => {
      clearTimeout(timer);
      session.removeAllListeners();
      // The connection window only grows by WINDOW_UPDATE (RFC 9113 §6.9.2), not by SETTINGS.
      session.setLocalWindowSize(opts.windowBytes);
      resolve(session);
    });
  });
}

class H2BidiStream extends EventEmitter implements BidiStream {
  private readonly decoder: GrpcFrameDecoder;
  private httpStatus: number | undefined;
  private trailers: http2.IncomingHttpHeaders | undefined;
  /** Why this client ended the call (an undecodable message). */
  private decodeError: string | undefined;
  /** What Node reported with the stream's end (a RST_STREAM, a connection failure). */
  private problem: string | undefined;
  private ended = false;

  constructor(
    private readonly req: http2.ClientHttp2Stream,
    maxMessageBytes: number,
    private readonly connectionFailure: () => string | undefined,
  ) {
    super();
    this.decoder = new GrpcFrameDecoder(maxMessageBytes);
    req.on('response', (headers, flags) => {
      this.httpStatus = Number(headers[':status']);
      // Trailers-only: the status comes in the only HEADERS frame.
      if (flags & NGHTTP2_FLAG_END_STREAM) this.trailers = headers;
    });
    req.on('trailers', (headers) => {
      this.trailers = headers;
    });
    req.on('data', (chunk: Buffer) => this.receive(chunk));
    // Node reports a RST_STREAM or a connection failure here, then closes the stream.
    req.on('error', (err: Error) => {
      this.problem ??= err.message;
    });
    // The server's END_STREAM ends the call; our side stays open until we end it too, so 'close'
    // alone would come only after that. A RST_STREAM or a dropped connection closes both at once.
    req.on('end', () => this.finish());
    req.on('close', () => this.finish());
  }

  write(message: Buffer): void {
    if (!this.ended) this.req.write(frameMessage(message));
  }

  cancel(): void {
    if (this.ended) return;
    this.ended = true;
    this.req.close(NGHTTP2_CANCEL);
  }

  private receive(chunk: Buffer): void {
    if (this.ended) return;
    try {
      this.decoder.push(chunk, (message) => this.emit('data', message));
    } catch (err) {
      this.decodeError = `unreadable response: ${(err as Error).message}`;
      this.req.close(NGHTTP2_CANCEL);
    }
  }

  private finish(): void {
    if (this.ended) return;
    this.ended = true;
    // After the server's END_STREAM a half-close releases the stream; a RST_STREAM would be
    // redundant (grpc-js does the same).
    if (!this.req.closed) this.req.end();
    const error = this.endError();
    if (error) this.emit('error', new Error(error));
    else this.emit('end');
  }

  /** Why the call ended, in grpc-js's words where it has them; undefined for status OK. */
  private endError(): string | undefined {
    const status = this.trailers?.['grpc-status'];
    if (this.decodeError) return `13 INTERNAL: ${this.decodeError}`;
    if (status !== undefined) {
      const code = Number(status);
      if (code === 0 && this.decoder.idle) return undefined;
      const message = decodeGrpcMessage(String(this.trailers?.['grpc-message'] ?? ''));
      const partial = this.decoder.idle ? '' : ' (the stream ended inside a message)';
      return `${code} ${statusNames[code] ?? 'UNKNOWN'}: ${message}${partial}`;
    }
    if (this.httpStatus !== undefined && this.httpStatus !== 200)
      return `HTTP status ${this.httpStatus} without grpc-status`;
    const rst = this.req.rstCode;
    const cause = [this.problem, this.connectionFailure()].filter(Boolean).join('; ');
    const detail = cause ? ` (${cause})` : '';
    if (rst === NGHTTP2_REFUSED_STREAM) return `14 UNAVAILABLE: stream refused by server${detail}`;
    if (rst === NGHTTP2_ENHANCE_YOUR_CALM)
      return `8 RESOURCE_EXHAUSTED: RST_STREAM ENHANCE_YOUR_CALM${detail}`;
    if (rst === undefined || rst === NGHTTP2_NO_ERROR)
      return `13 INTERNAL: stream ended without grpc-status${detail}`;
    return `13 INTERNAL: received RST_STREAM with code ${rst}${detail}`;
  }
}

/** A stream on a connection that could not open one: it reports why, once, and does nothing else. */
class FailedStream extends EventEmitter implements BidiStream {
  private cancelled = false;

  constructor(message: string) {
    super();
    process.nextTick(() => {
      if (!this.cancelled) this.emit('error', new Error(`14 UNAVAILABLE: ${message}`));
    });
  }

  write(): void {}

  cancel(): void {
    this.cancelled = true;
  }
}

/** `grpc-message` is percent-encoded (PROTOCOL-HTTP2: "Status-Message"). */
function decodeGrpcMessage(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}
