import { describe, expect, it } from 'vitest';
import type { IntentionSource } from '../../src/catalog/types.js';
import { sourcePrincipal } from '../../src/snapshot/intentions.js';
import { xfccRegex } from '../../src/xds/resources/rbac.js';

/**
 * Envoy's safe_regex matches the whole header value; RE2 and JavaScript agree on these patterns.
 */
const fullMatch = (regex: string, value: string) => new RegExp(`^(?:${regex})$`).test(value);

describe('the XFCC principal of a peer source on an HTTP listener', () => {
  const source: IntentionSource = {
    name: 'web',
    namespace: 'default',
    partition: '',
    peer: 'cluster-b',
    action: 'allow',
  };
  const p = sourcePrincipal(source, 'a.consul', () => 'b.consul')!;
  const re = xfccRegex(p.spiffeRegex);
  const web = 'spiffe://b.consul/ns/default/dc/dc-b/svc/web';
  const gw = 'By=spiffe://a.consul/gateway/mesh/dc/dc-a;Hash=abc';
  const sidecar =
    'By=spiffe://a.consul/ns/default/dc/dc-a/svc/api;Hash=def;Subject="";URI=spiffe://a.consul/gateway/mesh/dc/dc-a';

  it('is gated on our own mesh gateway', () => {
    expect(p.viaGatewayRegex).toBe('^spiffe://a\\.consul/gateway/mesh/dc/[^/]+$');
    expect(new RegExp(p.viaGatewayRegex!).test('spiffe://a.consul/gateway/mesh/dc/dc-a')).toBe(
      true,
    );
    expect(new RegExp(p.viaGatewayRegex!).test('spiffe://b.consul/gateway/mesh/dc/dc-b')).toBe(
      false,
    );
  });

  it('matches the caller our gateway named first, whatever later hops appended or fields follow', () => {
    expect(fullMatch(re, `${gw};URI=${web}`)).toBe(true);
    expect(fullMatch(re, `${gw};URI=${web},${sidecar}`)).toBe(true);
    expect(fullMatch(re, `${gw};URI=${web};DNS=web.example,${sidecar}`)).toBe(true);
  });

  it('refuses a look-alike service, another trust domain, and the source named only by a later hop', () => {
    expect(fullMatch(re, `${gw};URI=${web}2,${sidecar}`)).toBe(false);
    expect(fullMatch(re, `${gw};URI=spiffe://c.consul/ns/default/dc/dc-b/svc/web,${sidecar}`)).toBe(
      false,
    );
    expect(
      fullMatch(re, `${gw};URI=spiffe://b.consul/ns/default/dc/dc-b/svc/intruder,By=x;URI=${web}`),
    ).toBe(false);
  });

  it('local sources match by certificate only', () => {
    expect(
      sourcePrincipal({ ...source, peer: '' }, 'a.consul', () => undefined)!.viaGatewayRegex,
    ).toBeUndefined();
  });
});
