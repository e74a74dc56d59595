import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';

export interface XdsServerOptions {
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** Streams beyond this many get RESOURCE_EXHAUSTED. */
  readonly maxStreams?: number;
}

/**
 * The xDS gRPC server: ADS (SotW and Delta) and CSDS. (Skeleton: services are added by the ADS work.)
 */
export class XdsServer {
  private readonly server: grpc.Server;
  private port: number | undefined;

  constructor(private readonly opts: XdsServerOptions) {
    this.server = new grpc.Server({
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
      'grpc.http2.min_ping_interval_without_data_ms': 5_000,
      'grpc.keepalive_permit_without_calls': 1,
    });
  }

  /** Binds `host:port` (port 0 picks a free one) and resolves with the bound port. */
  async listen(hostPort: string): Promise<number> {
    this.port = await new Promise<number>((resolve, reject) => {
      this.server.bindAsync(hostPort, grpc.ServerCredentials.createInsecure(), (err, port) =>
        err ? reject(err) : resolve(port),
      );
    });
    this.opts.logger.info({ addr: hostPort, port: this.port }, 'xds server listening');
    return this.port;
  }

  /** The per-proxy summary served as `GET /v1/xds/proxies` (same data as CSDS). */
  proxyStatus(): unknown[] {
    return [];
  }

  get listening(): boolean {
    return this.port !== undefined;
  }

  /**
   * Stops accepting streams (GOAWAY), ends open streams so clients reconnect elsewhere, and
   * force-closes whatever is left after `graceMs`.
   */
  async shutdown(graceMs = 5_000): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, graceMs);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    this.port = undefined;
  }
}
