/**
 * When a published view reaches a stream: at once, as it is published, unless the stream waits
 * for an ACK; then the latest view goes after the ACK. A stream that fails while being pushed to
 * ends alone. Driven in-process on fake calls, so "at once" means before the publish returns.
 */
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { DeltaDiscoveryRequest, DeltaDiscoveryResponse, type DeepPartial } from '../../src/gen/envoy/service/discovery/v3/discovery.js';
import { ClusterLoadAssignment } from '../../src/gen/envoy/config/endpoint/v3/endpoint.js';
import { Metrics } from '../../src/metrics.js';
import { silentLogger } from '../../src/log.js';
import { XdsCache } from '../../src/xds/cache/xds-cache.js';
import { DeltaSession } from '../../src/xds/ads/delta-session.js';
import type { SessionContext } from '../../src/xds/ads/session.js';
import { TypeUrl } from '../../src/xds/types.js';
import { endpoints } from '../helpers/resources.js';

class FakeCall extends EventEmitter {
  readonly metadata = new grpc.Metadata();
  readonly written: DeltaDiscoveryResponse[] = [];
  failWrites = false;
  ended: { code: number; details: string } | undefined;

  constructor() {
    super();
    this.on('error', (e: { code: number; details: string }) => (this.ended = e));
  }

  write(b: Buffer): boolean {
    if (this.failWrites) throw new Error('write failed');
    this.written.push(DeltaDiscoveryResponse.decode(b));
    return true;
  }

  end(): void {
    this.emit('close');
  }

  request(r: DeepPartial<DeltaDiscoveryRequest>): void {
    this.emit('data', DeltaDiscoveryRequest.fromPartial(r));
  }

  ackLast(): void {
    const last = this.written.at(-1)!;
    this.request({ typeUrl: last.typeUrl, responseNonce: last.nonce });
  }
}

/** Lets admission (a promise) and the flush it schedules (an immediate) run. */
const settle = async () => {
  for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
};
function firstPort(r: DeltaDiscoveryResponse): number | undefined {
  const lb = ClusterLoadAssignment.decode(r.resources[0]!.resource!.value).endpoints[0]!.lbEndpoints[0]!;
  const address = lb.hostIdentifier?.$case === 'endpoint' ? lb.hostIdentifier.value.address : undefined;
  return address?.address?.$case === 'socketAddress' && address.address.value.portSpecifier?.$case === 'portValue'
    ? address.address.value.portSpecifier.value
    : undefined;
}

async function connected(cache: XdsCache, ids: readonly string[]): Promise<FakeCall[]> {
  const metrics = new Metrics();
  const ctx: SessionContext = {
    cache, metrics, logger: silentLogger(), maxResponseBytes: 4 * 1024 * 1024, warmingTimeoutMs: 1_000,
    authorize: () => undefined, onReady: () => undefined, onClose: () => undefined,
  };
  const calls = ids.map((id) => {
    cache.setProxyResources(id, [endpoints('a', [1])]);
    const call = new FakeCall();
    new DeltaSession('delta', ctx, call as unknown as grpc.ServerDuplexStream<DeltaDiscoveryRequest, Buffer>);
    call.request({ node: { id }, typeUrl: TypeUrl.endpoint, resourceNamesSubscribe: ['a'] });
    return call;
  });
  await settle();
  for (const c of calls) c.ackLast();
  await settle();
  return calls;
}

describe('pushing a published view', () => {
  it('writes it before the publish returns, and the latest one after the ACK when more came meanwhile', async () => {
    const cache = new XdsCache();
    const [call] = await connected(cache, ['n']);
    const before = call!.written.length;
    cache.setProxyResources('n', [endpoints('a', [2])]);
    expect(call!.written.length).toBe(before + 1);
    expect(firstPort(call!.written.at(-1)!)).toBe(2);
    cache.setProxyResources('n', [endpoints('a', [3])]);
    cache.setProxyResources('n', [endpoints('a', [4])]);
    await settle();
    expect(call!.written.length).toBe(before + 1); // nothing more until the ACK
    call!.ackLast();
    await settle();
    expect(call!.written.map(firstPort).slice(before)).toEqual([2, 4]);
  });

  it('settles a response only by its exact nonce: a number written another way is no ACK', async () => {
    const cache = new XdsCache();
    const [call] = await connected(cache, ['n']);
    cache.setProxyResources('n', [endpoints('a', [2])]);
    const nonce = call!.written.at(-1)!.nonce;
    expect(nonce).toMatch(/^[1-9][0-9]*$/);
    cache.setProxyResources('n', [endpoints('a', [3])]); // waits for the ACK of port 2
    for (const lookalike of [`0${nonce}`, `${nonce} `, `+${nonce}`, `${nonce}.0`, `${Number(nonce) + 1}`, '']) {
      call!.request({ typeUrl: TypeUrl.endpoint, responseNonce: lookalike });
      await settle();
    }
    expect(call!.written.map(firstPort).at(-1)).toBe(2);
    call!.request({ typeUrl: TypeUrl.endpoint, responseNonce: nonce });
    await settle();
    expect(call!.written.map(firstPort).at(-1)).toBe(3);
  });

  it('ends only the stream whose write fails; the publish and the other streams go on', async () => {
    const cache = new XdsCache();
    const [bad, good] = await connected(cache, ['bad', 'good']);
    bad!.failWrites = true;
    expect(() => cache.setProxyResources('bad', [endpoints('a', [5])])).not.toThrow();
    expect(bad!.ended).toMatchObject({ code: grpc.status.INTERNAL });
    cache.setProxyResources('good', [endpoints('a', [5])]);
    expect(firstPort(good!.written.at(-1)!)).toBe(5);
  });
});
