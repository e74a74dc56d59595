/**
 * Micro-benchmark: a 1,000-cluster SotW CDS response assembled from the cache, (a) by the steps of
 * SotwSession.planFullState/response (sotw-session.ts) mirrored here, and (b) through a real
 * SotwSession on an in-process fake call, timed from a publish to the response being written.
 */
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import * as grpc from '@grpc/grpc-js';
import { DiscoveryRequest } from '../../src/gen/envoy/service/discovery/v3/discovery.js';
import { Metrics } from '../../src/metrics.js';
import { silentLogger } from '../../src/log.js';
import { byName, type EncodedResource } from '../../src/xds/cache/entry.js';
import { entriesOf, type ProxyView } from '../../src/xds/cache/proxy-view.js';
import { XdsCache } from '../../src/xds/cache/xds-cache.js';
import { SotwSession } from '../../src/xds/ads/sotw-session.js';
import { stateVersion } from '../../src/xds/cache/type-entries.js';
import { FlushScheduler } from '../../src/xds/ads/flush-scheduler.js';
import { PushCounters } from '../../src/xds/ads/push-counters.js';
import type { SessionContext } from '../../src/xds/ads/session.js';
import { TypeState } from '../../src/xds/ads/type-state.js';
import { TypeUrl } from '../../src/xds/types.js';
import { encodeSotwResponse } from '../../src/xds/wire.js';
import { edsCluster, endpoints, secret } from '../../test/helpers/resources.js';
import { median, percentile } from './stats.js';
import { parseResponse } from './wire-reader.js';

export interface CdsMicroResult {
  readonly clusters: number;
  readonly responseBytes: number;
  /** (a) the mirrored assembly, µs. */
  readonly assemblyP50Us: number;
  readonly assemblyP90Us: number;
  /**
   * (b) publish of one changed cluster → response written by a SotwSession, µs (publish itself
   * excluded).
   */
  readonly sessionP50Us: number;
  /**
   * The publish call that (b) measures from: updateProxyResources on the 2,001-resource view, µs.
   */
  readonly publishP50Us: number;
}

const clusterName = (i: number) => `svc-${String(i).padStart(4, '0')}`;

function bigView(cache: XdsCache, clusters: number): EncodedResource[] {
  const out: EncodedResource[] = [cache.encode(secret('ca-bundle'))];
  for (let i = 0; i < clusters; i++) {
    out.push(cache.encode(edsCluster(clusterName(i), { secret: 'ca-bundle' })));
    out.push(
      cache.encode(endpoints(clusterName(i), [8080, 8081, 8082], `10.${i >> 8}.${i & 255}.1`)),
    );
  }
  return out;
}

/**
 * sotw-session.ts planFullState('upsert') followed by response(): the same steps in the same order.
 */
function assembleCds(
  view: ProxyView,
  ts: TypeState,
  nonce: string,
): { bytes: Buffer; resources: Map<string, string> } {
  const desired = ts.desired(entriesOf(view, ts.typeUrl));
  const desiredNames = new Set(desired.map((e) => e.name));
  const gone = [...ts.lastState.values()].filter((e) => !desiredNames.has(e.name));
  const changed = desired.some(
    (e) => ts.lastState.get(e.name)?.version !== e.version || ts.forced?.has(e.name),
  );
  if (!changed && ts.sentVersionInfo !== '') throw new Error('nothing to send');
  const state = [...desired, ...gone].sort(byName);
  const version = stateVersion(state);
  const resources = new Map(state.map((e) => [e.name, e.version]));
  return {
    bytes: encodeSotwResponse(
      version,
      ts.typeUrl,
      nonce,
      state.map((e) => e.sotwField),
    ),
    resources,
  };
}

function timeAssembly(
  view: ProxyView,
  warmup: number,
  iterations: number,
): { samples: number[]; bytes: number } {
  const ts = new TypeState(TypeUrl.cluster);
  ts.applySotwNames([]); // the wildcard CDS request Envoy sends
  let bytes = 0;
  for (let i = 0; i < warmup; i++) bytes = assembleCds(view, ts, String(i)).bytes.length;
  const samples: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const t0 = performance.now();
    assembleCds(view, ts, String(warmup + i));
    samples.push((performance.now() - t0) * 1000);
  }
  return { samples, bytes };
}

/** A grpc ServerDuplexStream stand-in that hands each written response to the benchmark. */
class FakeCall extends EventEmitter {
  readonly metadata = new grpc.Metadata();
  private waiter: ((b: Buffer) => void) | undefined;

  write(b: Buffer): boolean {
    const w = this.waiter;
    this.waiter = undefined;
    w?.(b);
    return true;
  }

  end(): void {
    this.emit('close');
  }

  nextWrite(timeoutMs = 10_000): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no SotW CDS response within ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.waiter = (b) => {
        clearTimeout(timer);
        resolve(b);
      };
    });
  }
}

async function timeSession(
  cache: XdsCache,
  nodeId: string,
  warmup: number,
  iterations: number,
): Promise<{ flush: number[]; publish: number[] }> {
  const call = new FakeCall();
  const metrics = new Metrics();
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
  new SotwSession(
    'sotw',
    ctx,
    call as unknown as grpc.ServerDuplexStream<DiscoveryRequest, Buffer>,
  );
  const ackOf = (b: Buffer) => {
    const r = parseResponse(b, false);
    return DiscoveryRequest.fromPartial({
      typeUrl: TypeUrl.cluster,
      versionInfo: r.versionInfo,
      responseNonce: r.nonce,
    });
  };
  let written = call.nextWrite();
  call.emit(
    'data',
    DiscoveryRequest.fromPartial({ node: { id: nodeId }, typeUrl: TypeUrl.cluster }),
  );
  call.emit('data', ackOf(await written));
  const variants = [0, 1].map((v) =>
    cache.encode(edsCluster(clusterName(0), { secret: 'ca-bundle', timeoutSeconds: 5 + v })),
  );
  const flush: number[] = [];
  const publish: number[] = [];
  for (let i = 0; i < warmup + iterations; i++) {
    written = call.nextWrite();
    const t0 = performance.now();
    cache.updateProxyResources(nodeId, { upsert: [variants[(i + 1) % 2]!] });
    const t1 = performance.now();
    const bytes = await written;
    const t2 = performance.now();
    if (i >= warmup) {
      publish.push((t1 - t0) * 1000);
      flush.push((t2 - t1) * 1000);
    }
    call.emit('data', ackOf(bytes));
  }
  call.emit('close');
  return { flush, publish };
}

export async function runCdsMicro(
  clusters = 1_000,
  warmup = 50,
  iterations = 200,
): Promise<CdsMicroResult> {
  const cache = new XdsCache();
  const view = cache.setProxyResources('cds-bench', bigView(cache, clusters));
  const a = timeAssembly(view, warmup, iterations);
  const b = await timeSession(cache, 'cds-bench', warmup, iterations);
  return {
    clusters,
    responseBytes: a.bytes,
    assemblyP50Us: median(a.samples),
    assemblyP90Us: percentile(a.samples, 90),
    sessionP50Us: median(b.flush),
    publishP50Us: median(b.publish),
  };
}
