/** `x-forwarded-client-cert` as the demo reads it: the By and URI of each element, oldest first. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseXfcc } from '../../src/demo/xfcc.js';

describe('parseXfcc', () => {
  it('reads each element of a header Envoy wrote through a gateway and a sidecar, quoted values with , ; = included', () => {
    const cert = '"-----BEGIN%20CERTIFICATE-----%0AMIIC%2Bx%3D%0A-----END%20CERTIFICATE-----%0A"';
    const header = [
      'By=spiffe://a.consul/gateway/mesh/dc/dc-a;Hash=5bfc77;URI=spiffe://b.consul/ns/default/dc/dc-b/svc/web',
      `By=spiffe://a.consul/ns/default/dc/dc-a/svc/api;Hash=22a5e8;Cert=${cert};Chain=${cert};Subject="CN=dc-a,O=x;y";URI=spiffe://a.consul/gateway/mesh/dc/dc-a`,
    ].join(',');
    expect(parseXfcc(header)).toEqual([
      {
        by: 'spiffe://a.consul/gateway/mesh/dc/dc-a',
        uri: 'spiffe://b.consul/ns/default/dc/dc-b/svc/web',
      },
      {
        by: 'spiffe://a.consul/ns/default/dc/dc-a/svc/api',
        uri: 'spiffe://a.consul/gateway/mesh/dc/dc-a',
      },
    ]);
  });

  it('leaves out what it cannot read, and never throws', () => {
    expect(parseXfcc('')).toEqual([]);
    expect(parseXfcc('Hash=abc,garbage,URI=spiffe://x/y')).toEqual([{ uri: 'spiffe://x/y' }]);
    fc.assert(fc.property(fc.string(), (s) => Array.isArray(parseXfcc(s))));
  });
});
