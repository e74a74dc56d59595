import { describe, expect, it } from 'vitest';
import {
  DeltaDiscoveryRequest,
  type DeepPartial,
} from '../../src/gen/envoy/service/discovery/v3/discovery.js';
import { decodeDeltaRequest } from '../../src/xds/ads/delta-request.js';
import { TypeUrl } from '../../src/xds/types.js';

const encode = (r: DeepPartial<DeltaDiscoveryRequest>) =>
  Buffer.from(DeltaDiscoveryRequest.encode(DeltaDiscoveryRequest.fromPartial(r)).finish());

describe('decodeDeltaRequest', () => {
  const cases: Record<string, Buffer> = {
    'a plain ACK': encode({ typeUrl: TypeUrl.endpoint, responseNonce: '42' }),
    'an ACK with a long, non-ASCII nonce': encode({
      typeUrl: TypeUrl.cluster,
      responseNonce: `n-${'é'.repeat(200)}`,
    }),
    'a NACK': encode({
      typeUrl: TypeUrl.cluster,
      responseNonce: '7',
      errorDetail: { code: 3, message: 'bad cluster', details: [] },
    }),
    'an ACK that subscribes': encode({
      typeUrl: TypeUrl.endpoint,
      responseNonce: '8',
      resourceNamesSubscribe: ['a'],
    }),
    'a first request with a node': encode({ node: { id: 'n' }, typeUrl: TypeUrl.cluster }),
    'a request without a nonce': encode({ typeUrl: TypeUrl.listener }),
    'an ACK of a type isthmus does not serve': encode({
      typeUrl: 'type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig',
      responseNonce: '1',
    }),
    'a reconnect with initial versions': encode({
      typeUrl: TypeUrl.secret,
      initialResourceVersions: { s: 'v1' },
    }),
    'an empty message': Buffer.alloc(0),
    // Repeated singular fields: the last one wins, as in the generated decoder.
    'a type URL given twice': Buffer.concat([
      encode({ typeUrl: TypeUrl.route }),
      encode({ typeUrl: TypeUrl.endpoint, responseNonce: '3' }),
    ]),
  };

  for (const [name, bytes] of Object.entries(cases)) {
    it(`reads ${name} as the generated decoder does`, () => {
      expect(decodeDeltaRequest(bytes)).toEqual(DeltaDiscoveryRequest.decode(bytes));
    });
  }

  it('gives a plain ACK the canonical type URL and lists no other request shares', () => {
    const req = decodeDeltaRequest(cases['a plain ACK']!);
    const next = decodeDeltaRequest(cases['a plain ACK']!);
    expect(req.typeUrl).toBe(TypeUrl.endpoint);
    req.resourceNamesSubscribe.push('changed by a reader');
    expect(next.resourceNamesSubscribe).toEqual([]);
    expect(next.resourceNamesUnsubscribe).toEqual([]);
  });

  it('rejects truncated bytes like the generated decoder', () => {
    const bytes = cases['a plain ACK']!.subarray(0, 10);
    expect(() => DeltaDiscoveryRequest.decode(bytes)).toThrow();
    expect(() => decodeDeltaRequest(bytes)).toThrow();
  });
});
