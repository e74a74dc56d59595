/**
 * Micro-benchmark (one process, no network): the server's own work on the push path. N Delta
 * sessions on in-process fake calls, synced like the fan-out proxies; each round publishes one
 * endpoint change to all of them (each publish writes that proxy's response), runs whatever the
 * scheduler flushes after that, then applies the N ACKs decoded from their bytes. Per proxy, median
 * over the rounds after a warm-up: what isthmus adds to what grpc-js and HTTP/2 cost, without the
 * machine's other processes in the figure.
 */
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import * as grpc from '@grpc/grpc-js';
import type { DeltaDiscoveryRequest } from '../../src/gen/envoy/service/discovery/v3/discovery.js';
import { Metrics } from '../../src/metrics.js';
import { silentLogger } from '../../src/log.js';
import { XdsCache } from '../../src/xds/cache/xds-cache.js';
import { DeltaSession } from '../../src/xds/ads/delta-session.js';
import { decodeDeltaRequest } from '../../src/xds/ads/delta-request.js';
import type { SessionContext } from '../../src/xds/ads/session.js';
import { FlushScheduler } from '../../src/xds/ads/flush-scheduler.js';
import { PushCounters } from '../../src/xds/ads/push-counters.js';
import { TypeUrl } from '../../src/xds/types.js';
import { Fixture } from './fixture.js';
import { deltaAck, deltaRequest } from './proxies.js';
import { median } from './stats.js';
import { parseResponse } from './wire-reader.js';

export interface PushMicroResult {
  readonly proxies: number;
  /**
   * µs per proxy: updateProxyResources (which writes the response: a view is pushed as it is
   * published), what the scheduler flushes after it, decoding and applying the ACK.
   */
  readonly publishUs: number;
  readonly flushUs: number;
  readonly ackUs: number;
}

/** A grpc ServerDuplexStream stand-in that keeps what the session writes. */
class FakeCall extends EventEmitter {
  readonly metadata = new grpc.Metadata();
  readonly written: Buffer[] = [];

  write(b: Buffer): boolean {
    this.written.push(b);
    return true;
  }

  end(): void {
    this.emit('close');
  }
}

const nextImmediate = () => new Promise((r) => setImmediate(r));

export async function runPushMicro(
  proxies = 1_000,
  rounds = 40,
  warmup = 5,
): Promise<PushMicroResult> {
  const metrics = new Metrics();
  const cache = new XdsCache(metrics);
  const ctx: SessionContext = {
    cache,
    metrics,
    logger: silentLogger(),
    maxResponseBytes: 4 * 1024 * 1024,
    warmingTimeoutMs: 1_000,
    admissionTimeoutMs: 10_000,
    scheduler: new FlushScheduler(),
    pushes: new PushCounters(metrics),
    authorize: () => undefined,
    claimSlot: () => undefined,
    onReady: () => undefined,
    onClose: () => undefined,
  };
  const fixture = new Fixture(cache);
  for (let r = 0; r <= rounds; r++) fixture.markerEndpoints(r);
  const ids = Array.from({ length: proxies }, (_, i) => `proxy-${i}`);
  for (const id of ids) cache.setProxyResources(id, fixture.view(0));
  const calls = ids.map(() => new FakeCall());
  ids.forEach(
    (_, i) =>
      new DeltaSession(
        'delta',
        ctx,
        calls[i] as unknown as grpc.ServerDuplexStream<DeltaDiscoveryRequest, Buffer>,
      ),
  );
  const send = (i: number, b: Buffer) => calls[i]!.emit('data', decodeDeltaRequest(b));
  /** The ACK of every response written so far, built before the clock starts (client work). */
  const acksOfWritten = () =>
    calls.flatMap((c, i) =>
      c.written.splice(0).map((b) => {
        const res = parseResponse(b, true);
        return [i, deltaAck(res.typeUrl, res.nonce)] as const;
      }),
    );

  // Subscribe like the fan-out proxies: wildcard CDS, EDS for the ten clusters, the secret,
  // wildcard LDS.
  const clusters = Array.from({ length: fixture.expected.clusters }, (_, k) => `cluster-${k}`);
  ids.forEach((id, i) => send(i, deltaRequest(id, TypeUrl.cluster, [], '')));
  ids.forEach((_, i) => send(i, deltaRequest(undefined, TypeUrl.endpoint, clusters, '')));
  ids.forEach((_, i) =>
    send(i, deltaRequest(undefined, TypeUrl.secret, [fixture.expected.secretName], '')),
  );
  ids.forEach((_, i) => send(i, deltaRequest(undefined, TypeUrl.listener, [], '')));
  for (let k = 0; k < 20; k++) {
    await nextImmediate();
    for (const [i, ack] of acksOfWritten()) send(i, ack);
  }
  if (acksOfWritten().length > 0)
    throw new Error('push micro-benchmark: the sessions did not settle');

  const publish: number[] = [];
  const flush: number[] = [];
  const ack: number[] = [];
  for (let r = 1; r <= rounds; r++) {
    // As SnapshotPublisher publishes an endpoint move: the changed resource upserted.
    const change = { upsert: [fixture.markerEndpoints(r)] };
    const t0 = performance.now();
    for (const id of ids) cache.updateProxyResources(id, change);
    const t1 = performance.now();
    await nextImmediate();
    const t2 = performance.now();
    const acks = acksOfWritten();
    if (acks.length !== proxies)
      throw new Error(
        `push micro-benchmark: round ${r} wrote ${acks.length} responses, not ${proxies}`,
      );
    const t3 = performance.now();
    for (const [i, b] of acks) send(i, b);
    const t4 = performance.now();
    await nextImmediate();
    if (calls.some((c) => c.written.length > 0))
      throw new Error(`push micro-benchmark: round ${r} wrote more than one response per proxy`);
    if (r > warmup) {
      publish.push(((t1 - t0) * 1000) / proxies);
      flush.push(((t2 - t1) * 1000) / proxies);
      ack.push(((t4 - t3) * 1000) / proxies);
    }
  }
  for (const c of calls) c.end();
  return { proxies, publishUs: median(publish), flushUs: median(flush), ackUs: median(ack) };
}
