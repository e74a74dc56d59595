/**
 * The benchmarks' fake-proxy transport, chosen with `--client`: `h2` (h2-bidi-client.ts, the
 * default: lean, so the clients take less of the cores the server under test runs on) or `grpc-js`
 * (the grpc-js client the figures before it were measured with, kept so they stay reproducible).
 * Both open one HTTP/2 connection per `connectBidi` with Envoy's receive windows.
 */
import * as grpc from '@grpc/grpc-js';
import { type BidiStream, H2BidiConnection } from './h2-bidi-client.js';

export type { BidiStream } from './h2-bidi-client.js';

export type ClientKind = 'h2' | 'grpc-js';
export const clientKinds: readonly ClientKind[] = ['h2', 'grpc-js'];

/** One HTTP/2 connection, on which bidi calls of raw (already serialized) messages are opened. */
export interface BidiConnection {
  stream(path: string): BidiStream;
  close(): void;
}

/**
 * Envoy's HTTP/2 receive windows: initial_stream_window_size and initial_connection_window_size
 * both default to 256 MiB. With HTTP/2's 64 KiB default, a connection shared by a worker's
 * thousands of streams stalls the server every 64 KiB of a round until the busy client process
 * sends a WINDOW_UPDATE.
 */
export const envoyWindowBytes = 256 * 1024 * 1024;
const maxMessageBytes = 64 * 1024 * 1024;

const identity = (b: Buffer): Buffer => b;

/** A bidi method of raw (already serialized) messages both ways, for a grpc-js server or client. */
export function rawBidiMethod(path: string): grpc.MethodDefinition<Buffer, Buffer> {
  return {
    path,
    requestStream: true,
    responseStream: true,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  };
}

/**
 * Connects to `address` (`host:port`, plaintext), retrying with backoff until `deadline`
 * (`Date.now()` ms): h2 by its own loop, grpc-js by its channel's reconnect backoff.
 */
export async function connectBidi(
  kind: ClientKind,
  address: string,
  deadline: number,
): Promise<BidiConnection> {
  if (kind === 'h2')
    return H2BidiConnection.connect(address, {
      windowBytes: envoyWindowBytes,
      maxMessageBytes,
      deadline,
    });
  const client = new grpc.Client(address, grpc.credentials.createInsecure(), {
    'grpc.use_local_subchannel_pool': 1,
    'grpc.max_receive_message_length': maxMessageBytes,
    // Envoy does not buffer what it sent for retries; grpc-js would, per message.
    'grpc.enable_retries': 0,
    'grpc-node.flow_control_window': envoyWindowBytes,
  });
  try {
    await new Promise<void>((resolve, reject) =>
      client.waitForReady(deadline, (err) => (err ? reject(err) : resolve())),
    );
  } catch (err) {
    client.close();
    throw err;
  }
  return {
    stream: (path) => client.makeBidiStreamRequest<Buffer, Buffer>(path, identity, identity),
    close: () => client.close(),
  };
}
