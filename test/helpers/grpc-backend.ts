/**
 * A tiny gRPC backend for routing tests: one unary method, `/test.Echo/Who`, that answers with the
 * backend's name, so a test can tell which backend a call through an xDS channel reached. Messages
 * are raw bytes (identity serializers): no proto needed on either side.
 */
import * as grpc from '@grpc/grpc-js';

const identity = (b: Buffer): Buffer => b;

export const echoService = {
  who: {
    path: '/test.Echo/Who',
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
} satisfies grpc.ServiceDefinition;

export interface EchoClient extends grpc.Client {
  who(
    request: Buffer,
    metadata: grpc.Metadata,
    options: Partial<grpc.CallOptions>,
    callback: (err: grpc.ServiceError | null, res?: Buffer) => void,
  ): grpc.ClientUnaryCall;
}

export const EchoClient = grpc.makeGenericClientConstructor(
  echoService,
  'test.Echo',
) as unknown as new (
  address: string,
  credentials: grpc.ChannelCredentials,
  options?: Partial<grpc.ChannelOptions>,
) => EchoClient;

export interface GrpcBackend {
  readonly name: string;
  readonly port: number;
  /** Calls answered so far. */
  readonly served: () => number;
  close(): Promise<void>;
}

/** Starts a backend on 127.0.0.1:0 that answers every `Who` call with its name. */
export async function startBackend(name: string): Promise<GrpcBackend> {
  const server = new grpc.Server();
  let served = 0;
  server.addService(echoService, {
    who: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      served++;
      callback(null, Buffer.from(name));
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  return {
    name,
    port,
    served: () => served,
    close: () =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 1_000);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      }),
  };
}

/** One `Who` call; resolves with the name of the backend that answered. */
export function callWho(client: EchoClient, timeoutMs = 2_000): Promise<string> {
  return new Promise((resolve, reject) => {
    client.who(
      Buffer.alloc(0),
      new grpc.Metadata(),
      { deadline: Date.now() + timeoutMs },
      (err, res) => (err ? reject(err) : resolve(res!.toString())),
    );
  });
}
