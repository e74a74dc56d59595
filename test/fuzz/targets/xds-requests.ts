/**
 * Fuzz target: the xDS request path of one ADS stream (issue 21 §4), in process. Each input is a
 * stream: the first line picks the API (`sotw`, else Delta), every other line is one request,
 * written as proto3 JSON (node, metadata, type URL, resource names, nonces, error detail) or taken
 * as raw bytes when it is not JSON; `ack` / `nack` answer the last response written. Requests go
 * through the server's own deserializers (the Delta plain-ACK fast path, MalformedRequest) into a
 * real DeltaSession / SotwSession on a real XdsCache holding a small proxy view. A finding is an
 * exception escaping the session, or a stream ended with INTERNAL: a client's bytes must end a
 * stream with INVALID_ARGUMENT or be answered, never be a server error.
 */
import { EventEmitter } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import {
  DeltaDiscoveryRequest,
  DeltaDiscoveryResponse,
  DiscoveryRequest,
  DiscoveryResponse,
} from '../../../src/gen/envoy/service/discovery/v3/discovery.js';
import { silentLogger } from '../../../src/log.js';
import { Metrics } from '../../../src/metrics.js';
import { decodeDeltaRequest } from '../../../src/xds/ads/delta-request.js';
import { DeltaSession } from '../../../src/xds/ads/delta-session.js';
import { FlushScheduler } from '../../../src/xds/ads/flush-scheduler.js';
import { decodeOrMalformed } from '../../../src/xds/ads/malformed-request.js';
import { PushCounters } from '../../../src/xds/ads/push-counters.js';
import type { AdsSession, SessionContext } from '../../../src/xds/ads/session.js';
import { SotwSession } from '../../../src/xds/ads/sotw-session.js';
import { XdsCache } from '../../../src/xds/cache/xds-cache.js';
import {
  edsCluster,
  endpoints,
  httpListener,
  route,
  secret,
  tcpListener,
} from '../../helpers/resources.js';
import { check, Finding, linesOf } from './verdict.js';

const metrics = new Metrics();
/** The proxy the cache holds a view for; requests naming another node get an empty view. */
const nodeId = 'web';
const view = [
  edsCluster('a', { secret: 's' }),
  edsCluster('b'),
  endpoints('a', [8080]),
  endpoints('b', [8081, 8082]),
  tcpListener('tcp', 9000, 'a'),
  httpListener('http', 9001, 'r'),
  route('r', 'b'),
  secret('s'),
];

type Api = 'delta' | 'sotw';

class FakeCall extends EventEmitter {
  readonly metadata = new grpc.Metadata();
  /** The last response written: its type URL and nonce, for `ack` / `nack` lines. */
  last: { typeUrl: string; nonce: string } | undefined;
  ended: { code: number; details: string } | undefined;

  constructor(private readonly api: Api) {
    super();
    this.on('error', (e: { code: number; details: string }) => {
      this.ended = e;
    });
  }

  write(b: Buffer): boolean {
    const res =
      this.api === 'delta' ? DeltaDiscoveryResponse.decode(b) : DiscoveryResponse.decode(b);
    this.last = { typeUrl: res.typeUrl, nonce: res.nonce };
    return true;
  }

  end(): void {
    this.emit('close');
  }
}

function context(cache: XdsCache): SessionContext {
  return {
    cache,
    metrics,
    logger: silentLogger(),
    maxResponseBytes: 64 * 1024,
    warmingTimeoutMs: 1_000,
    admissionTimeoutMs: 10_000,
    scheduler: new FlushScheduler(),
    pushes: new PushCounters(metrics),
    authorize: () => undefined,
    claimSlot: () => undefined,
    onReady: () => undefined,
    onClose: () => undefined,
  };
}

const decoders = {
  delta: decodeOrMalformed(decodeDeltaRequest),
  sotw: decodeOrMalformed((buf: Buffer) => DiscoveryRequest.decode(buf)),
};

/** The wire bytes of one request line, or undefined for a line the harness cannot express. */
function requestBytes(api: Api, line: string, call: FakeCall): Buffer | undefined {
  if (line === 'ack' || line === 'nack') {
    if (!call.last) return undefined;
    const errorDetail = line === 'nack' ? { code: 3, message: 'rejected' } : undefined;
    const req = { typeUrl: call.last.typeUrl, responseNonce: call.last.nonce, errorDetail };
    return api === 'delta'
      ? Buffer.from(DeltaDiscoveryRequest.encode(DeltaDiscoveryRequest.fromPartial(req)).finish())
      : Buffer.from(DiscoveryRequest.encode(DiscoveryRequest.fromPartial(req)).finish());
  }
  let json: unknown;
  try {
    json = JSON.parse(line);
  } catch {
    return Buffer.from(line, 'utf8');
  }
  // fromJSON is the harness's way to write a request, not a server path: what it cannot convert
  // is skipped.
  try {
    return api === 'delta'
      ? Buffer.from(DeltaDiscoveryRequest.encode(DeltaDiscoveryRequest.fromJSON(json)).finish())
      : Buffer.from(DiscoveryRequest.encode(DiscoveryRequest.fromJSON(json)).finish());
  } catch {
    return undefined;
  }
}

/** Lets admission (a promise) and the flushes it schedules (immediates) run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
}

export async function fuzz(data: Buffer): Promise<void> {
  const [first = '', ...lines] = linesOf(data);
  const api: Api = first.startsWith('sotw') ? 'sotw' : 'delta';
  const cache = new XdsCache();
  cache.setProxyResources(nodeId, view);
  const call = new FakeCall(api);
  const stream = call as unknown as grpc.ServerDuplexStream<never, Buffer>;
  const session: AdsSession =
    api === 'delta'
      ? new DeltaSession('delta', context(cache), stream)
      : new SotwSession('sotw', context(cache), stream);
  try {
    for (const line of lines) {
      const bytes = requestBytes(api, line, call);
      if (bytes === undefined) continue;
      call.emit('data', decoders[api](bytes));
      await settle();
      if (call.ended) break;
    }
    if (call.ended?.code === grpc.status.INTERNAL)
      throw new Finding(`stream ended with INTERNAL: ${call.ended.details}`);
    check(session.pendingResponses >= 0, 'negative pending responses');
  } finally {
    session.end();
  }
}
