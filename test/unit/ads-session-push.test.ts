/**
 * When a published view reaches a stream: at once, as it is published, unless the stream waits
 * for an ACK; then the latest view goes after the ACK. A stream that fails while being pushed to
 * ends alone. Driven in-process on fake calls, so "at once" means before the publish returns.
 */
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import {
  DeltaDiscoveryRequest,
  DeltaDiscoveryResponse,
  type DeepPartial,
} from '../../src/gen/envoy/service/discovery/v3/discovery.js';
import { ClusterLoadAssignment } from '../../src/gen/envoy/config/endpoint/v3/endpoint.js';
import { Metrics } from '../../src/metrics.js';
import { silentLogger } from '../../src/log.js';
import { XdsCache } from '../../src/xds/cache/xds-cache.js';
import { DeltaSession } from '../../src/xds/ads/delta-session.js';
import type { SessionContext } from '../../src/xds/ads/session.js';
import { FlushScheduler } from '../../src/xds/ads/flush-scheduler.js';
import { PushCounters } from '../../src/xds/ads/push-counters.js';
import { TypeUrl } from '../../src/xds/types.js';
import { resourceStatuses } from '../../src/xds/status.js';
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
  const lb = ClusterLoadAssignment.decode(r.resources[0]!.resource!.value).endpoints[0]!
    .lbEndpoints[0]!;
  const address =
    lb.hostIdentifier?.$case === 'endpoint' ? lb.hostIdentifier.value.address : undefined;
  return address?.address?.$case === 'socketAddress' &&
    address.address.value.portSpecifier?.$case === 'portValue'
    ? address.address.value.portSpecifier.value
    : undefined;
}

function sessionContext(cache: XdsCache): SessionContext {
  const metrics = new Metrics();
  return {
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
}

async function connected(
  cache: XdsCache,
  ids: readonly string[],
  sessions: DeltaSession[] = [],
): Promise<FakeCall[]> {
  const ctx = sessionContext(cache);
  const calls = ids.map((id) => {
    cache.setProxyResources(id, [endpoints('a', [1])]);
    const call = new FakeCall();
    sessions.push(
      new DeltaSession(
        'delta',
        ctx,
        call as unknown as grpc.ServerDuplexStream<DeltaDiscoveryRequest, Buffer>,
      ),
    );
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
    for (const lookalike of [
      `0${nonce}`,
      `${nonce} `,
      `+${nonce}`,
      `${nonce}.0`,
      `${Number(nonce) + 1}`,
      '',
    ]) {
      call!.request({ typeUrl: TypeUrl.endpoint, responseNonce: lookalike });
      await settle();
    }
    expect(call!.written.map(firstPort).at(-1)).toBe(2);
    call!.request({ typeUrl: TypeUrl.endpoint, responseNonce: nonce });
    await settle();
    expect(call!.written.map(firstPort).at(-1)).toBe(3);
  });

  it('reports what the client ACKed after many ACKs, removals and NACKs', async () => {
    const cache = new XdsCache();
    const sessions: DeltaSession[] = [];
    const [call] = await connected(cache, ['n'], sessions);
    call!.request({ typeUrl: TypeUrl.endpoint, resourceNamesSubscribe: ['b'] });
    await settle();
    call!.ackLast();
    await settle();
    const ackedPorts = () => {
      const statuses = resourceStatuses(sessions[0]!.status()).filter(
        (r) => r.typeUrl === TypeUrl.endpoint,
      );
      return Object.fromEntries(
        statuses.map((r) => [
          r.name,
          [
            r.status,
            r.ackedVersion === ''
              ? ''
              : r.entry && r.ackedVersion === r.entry.version
                ? 'current'
                : 'older',
          ],
        ]),
      );
    };
    for (let port = 2; port <= 40; port++) {
      // b goes away for a while at 20 and comes back at 30; 25 is NACKed, then 26 is ACKed.
      const view =
        port >= 20 && port < 30
          ? [endpoints('a', [port])]
          : [endpoints('a', [port]), endpoints('b', [port])];
      const before = call!.written.length;
      cache.setProxyResources('n', view);
      const pushed = call!.written.at(-1)!;
      expect([call!.written.length - before, firstPort(pushed)]).toEqual([1, port]);
      if (port === 25)
        call!.request({
          typeUrl: pushed.typeUrl,
          responseNonce: pushed.nonce,
          errorDetail: { code: 3, message: 'bad endpoints' },
        });
      else call!.ackLast();
      await settle();
      // b's removal goes once a's new endpoints are ACKed (make-before-break): ACK it too.
      if (call!.written.length > before + 1) {
        expect(call!.written.at(-1)!.removedResources).toEqual(['b']);
        call!.ackLast();
        await settle();
      }
      if (port === 25) expect(ackedPorts().a).toEqual(['ERROR', 'older']);
      if (port === 27) expect(ackedPorts()).toEqual({ a: ['SYNCED', 'current'] });
    }
    expect(ackedPorts()).toEqual({ a: ['SYNCED', 'current'], b: ['SYNCED', 'current'] });
    expect(sessions[0]!.status().types.get(TypeUrl.endpoint)!.acked.get('a')).toBe(
      cache.view('n')!.resources.get(TypeUrl.endpoint)!.get('a')!.version,
    );
  });

  it('pushes a change only of what the stream still subscribes to, as names come and go between pushes', async () => {
    const cache = new XdsCache();
    const [call] = await connected(cache, ['n']);
    const pushedNames = async (port: number): Promise<string[]> => {
      const before = call!.written.length;
      cache.setProxyResources('n', [endpoints('a', [port]), endpoints('b', [port])]);
      await settle();
      const names = call!.written.slice(before).flatMap((r) => r.resources.map((x) => x.name));
      call!.ackLast();
      await settle();
      return names;
    };
    const subscription = async (change: {
      resourceNamesSubscribe?: string[];
      resourceNamesUnsubscribe?: string[];
    }) => {
      const before = call!.written.length;
      call!.request({ typeUrl: TypeUrl.endpoint, ...change });
      await settle();
      if (call!.written.length > before) call!.ackLast();
      await settle();
    };
    await subscription({ resourceNamesSubscribe: ['b'] });
    expect(await pushedNames(2)).toEqual(['a', 'b']);
    expect(await pushedNames(3)).toEqual(['a', 'b']);
    await subscription({ resourceNamesUnsubscribe: ['b'] });
    expect(await pushedNames(4)).toEqual(['a']);
    expect(await pushedNames(5)).toEqual(['a']);
    await subscription({ resourceNamesSubscribe: ['b'] });
    expect(await pushedNames(6)).toEqual(['a', 'b']);
    expect(await pushedNames(7)).toEqual(['a', 'b']);
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

describe('admitting a stream', () => {
  it("keeps the node's identity and metadata but not its list of built-in extensions (Envoy 1.40 sends 500-odd)", async () => {
    const call = new FakeCall();
    const session = new DeltaSession(
      'delta',
      sessionContext(new XdsCache()),
      call as unknown as grpc.ServerDuplexStream<DeltaDiscoveryRequest, Buffer>,
    );
    const extensions = Array.from({ length: 500 }, (_, i) => ({
      name: `envoy.filters.x${i}`,
      category: 'envoy.filters.network',
    }));
    call.request({
      node: { id: 'web-sidecar-proxy', cluster: 'web', userAgentName: 'envoy', extensions },
      typeUrl: TypeUrl.endpoint,
      resourceNamesSubscribe: ['a'],
    });
    await settle();
    const node = session.node!;
    expect(node).toMatchObject({ id: 'web-sidecar-proxy', cluster: 'web', userAgentName: 'envoy' });
    expect(node.extensions).toEqual([]);
  });
});
