/**
 * `isthmus troubleshoot upstream` from fabricated facts: the chain, its targets and every ✗ with
 * its fix, as the CLI prints them (golden files test/golden/cli/troubleshoot-unit-upstream-*.txt).
 */
import { describe, expect, it } from 'vitest';
import {
  type TargetFact,
  type UpstreamFacts,
  renderUpstreamReport,
  upstreamReport,
} from '../../src/troubleshoot/upstream-checks.js';
import { expectGoldenText } from '../helpers/golden.js';

const td = 'bbbb.consul';
const local: TargetFact = {
  id: 'cart.default.default.dc-b',
  service: 'cart',
  subset: '',
  peer: '',
  datacenter: 'dc-b',
  cluster: `failover-target~0~cart.default.dc-b.internal.${td}`,
  sni: `cart.default.dc-b.internal.${td}`,
  healthy: 0,
  total: 1,
  serviceInstances: 1,
};
const peer: TargetFact = {
  id: 'cart.default.default.external.cluster-a',
  service: 'cart',
  subset: '',
  peer: 'cluster-a',
  cluster: `failover-target~1~cart.default.dc-b.internal.${td}`,
  sni: 'cart.default.default.cluster-b.external.aaaa.consul',
  healthy: 1,
  total: 1,
  peeringState: 'ACTIVE',
  bundle: true,
  meshEndpoints: true,
};
const aggregate = `cart.default.dc-b.internal.${td}`;
const synced = [aggregate, local.cluster!, peer.cluster!].map((name) => ({
  name,
  status: 'SYNCED' as const,
}));
const failedOver: UpstreamFacts = {
  proxyId: 'web-sidecar-proxy',
  upstream: 'cart',
  datacenter: 'dc-b',
  chain: {
    service: 'cart',
    resolver: false,
    failoverFrom: 'sameness-group shop (DefaultForFailover)',
  },
  targets: [local, peer],
  aggregate,
  clusters: synced,
};

function golden(name: string, f: UpstreamFacts, ok: boolean): string {
  const report = upstreamReport(f);
  expect(report.OK).toBe(ok);
  const text = renderUpstreamReport(report);
  const { actual, expected } = expectGoldenText(`cli/troubleshoot-unit-upstream-${name}.txt`, text);
  expect(actual).toBe(expected);
  return text;
}

describe('troubleshoot upstream', () => {
  it('failed over through a sameness group: the peer target serves, every cluster ACKed', () => {
    const text = golden('failed-over', failedOver, true);
    expect(text).toContain(
      '✓ a target with healthy instances: traffic goes to cart.default.default.external.cluster-a (1 of 1 healthy): 1 target before it has none',
    );
    expect(upstreamReport(failedOver).Targets.map((t) => t.Envoy)).toEqual(['SYNCED', 'SYNCED']);
  });

  it('no target has a healthy instance; the peering is not ACTIVE', () => {
    const text = golden(
      'no-healthy-target',
      {
        ...failedOver,
        targets: [local, { ...peer, peeringState: 'FAILING', healthy: 0 }],
      },
      false,
    );
    expect(text).toContain(
      '✗ a target with healthy instances: none of its 2 targets has a healthy instance',
    );
    expect(text).toContain('✗ peering cluster-a ACTIVE: the peering is FAILING');
  });

  it("the peer's bundle is missing: the target is not built, Envoy has nothing to ACK for it", () => {
    const unbuilt: TargetFact = {
      ...peer,
      bundle: false,
      meshEndpoints: false,
      healthy: 0,
      total: 0,
    };
    delete (unbuilt as { cluster?: string }).cluster;
    delete (unbuilt as { sni?: string }).sni;
    const onlyLocal = { ...local, cluster: aggregate, healthy: 1 };
    const text = golden(
      'peer-bundle-missing',
      {
        ...failedOver,
        targets: [onlyLocal, unbuilt],
        aggregate: undefined,
        clusters: [{ name: aggregate, status: 'SYNCED' }],
      },
      false,
    );
    expect(text).toContain('cluster-a has not sent its CA bundle');
    expect(text).toContain('NOT_BUILT');
  });

  it('a subset that matches no instance, and a proxy that is not connected', () => {
    const subset: TargetFact = {
      ...local,
      id: 'v3.cart.default.default.dc-b',
      subset: 'v3',
      subsetFilter: 'Service.Meta.version == v3',
      subsetDefined: true,
      cluster: `v3.cart.default.dc-b.internal.${td}`,
      sni: `v3.cart.default.dc-b.internal.${td}`,
      total: 0,
      serviceInstances: 2,
    };
    const text = golden(
      'subset-matches-none',
      {
        ...failedOver,
        chain: { service: 'cart', resolver: true, failoverFrom: '', connectTimeoutMs: 3000 },
        targets: [subset],
        aggregate: undefined,
        clusters: undefined,
      },
      false,
    );
    expect(text).toContain('✗ subset v3 of cart matches instances');
    expect(text).toContain(
      '- Envoy ACKed the clusters: web-sidecar-proxy is not connected over xDS',
    );
  });

  it('a router and splitter: each route, its splits, and which target each split reaches', () => {
    const v2: TargetFact = { ...local, id: 'cart-v2.default.default.dc-b', service: 'cart-v2' };
    const routed: UpstreamFacts = {
      ...failedOver,
      routes: [
        { match: 'PathPrefix /v2/ (any case)', splits: [{ weight: 100, targets: [v2] }] },
        {
          match: '',
          splits: [
            { weight: 90, targets: [local, peer] },
            { weight: 10, targets: [peer] },
          ],
        },
      ],
    };
    const report = upstreamReport(routed);
    expect(report.Routes).toEqual([
      {
        Match: 'PathPrefix /v2/ (any case)',
        Splits: [{ Weight: 100, Target: v2.id, TrafficTo: '', Healthy: 0, Total: 1 }],
      },
      {
        Match: '',
        Splits: [
          { Weight: 90, Target: local.id, TrafficTo: peer.id, Healthy: 1, Total: 1 },
          { Weight: 10, Target: peer.id, TrafficTo: peer.id, Healthy: 1, Total: 1 },
        ],
      },
    ]);
    expect(report.OK).toBe(false);
    const text = renderUpstreamReport(report);
    expect(text).toContain(
      [
        'routes (service-router, service-splitter), first match wins:',
        `  1. PathPrefix /v2/ (any case) → ${v2.id} (no healthy target)`,
        `  2. every request → 90% ${local.id} (failed over to ${peer.id}, 1/1 healthy), 10% ${peer.id} (1/1 healthy)`,
      ].join('\n'),
    );
    expect(text).toContain(
      `✗ every route reaches a healthy target: no healthy target for route 1 (PathPrefix /v2/ (any case)) → ${v2.id}: those requests get 503`,
    );
    // Without a router or splitter the report is as before: no Routes, no route check.
    expect(upstreamReport(failedOver).Routes).toBeUndefined();
  });
});
