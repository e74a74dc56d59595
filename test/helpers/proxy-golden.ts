/**
 * Golden files of a whole proxy config as an Envoy-like client holds it: one file per xDS type
 * under test/golden/<dir>/, every resource checked against Envoy's validate.rules on the way and
 * all of them together against the cross-resource lint.
 */
import { expect } from 'vitest';
import { messageTypeRegistry } from '../../src/gen/typeRegistry.js';
import { allTypeUrls, shortName } from '../../src/xds/types.js';
import type { EnvoyLike } from './envoy-like.js';
import { expandedJson, expectGolden, type Masker } from './golden.js';
import { validateMessage } from './pgv.js';
import { lintResources } from './xds-lint.js';

/**
 * Trust domains (by a stable label) and PEM material differ per run; everything else must be
 * byte-stable. In RBAC regexes a trust domain's dots are escaped (`\\.` once serialized as JSON).
 */
export function trustDomainMasker(tds: Readonly<Record<string, string>>): Masker {
  return (text) => {
    let out = text;
    for (const [label, td] of Object.entries(tds)) {
      out = out.split(td).join(`<${label}>`).split(td.replace(/\./g, '\\\\.')).join(`<${label}>`);
    }
    return out.replace(/-----BEGIN ([A-Z ]+)-----[^-]*-----END \1-----(\\n)?/g, '<$1 PEM>');
  };
}

/**
 * Compares what `envoy` holds with test/golden/<dir>/<type>.json (types it holds nothing of are
 * skipped).
 */
export function expectProxyGoldens(dir: string, envoy: EnvoyLike, mask: Masker): void {
  const lint: { typeUrl: string; name: string; message: Record<string, unknown> }[] = [];
  for (const typeUrl of allTypeUrls) {
    const typeName = typeUrl.slice(typeUrl.lastIndexOf('/') + 1);
    const resources = envoy.names(typeUrl).map((name) => {
      const message = envoy.get(typeUrl, name)!;
      const bytes = messageTypeRegistry
        .get(typeName)!
        .encode(message as never)
        .finish();
      expect(validateMessage(typeName, bytes), `${shortName[typeUrl]} ${name}`).toEqual([]);
      lint.push({ typeUrl, name, message });
      return expandedJson(typeName, bytes);
    });
    if (resources.length === 0) continue;
    const { actual, expected } = expectGolden(
      `${dir}/${shortName[typeUrl].toLowerCase()}.json`,
      resources,
      mask,
    );
    expect(actual).toBe(expected);
  }
  expect(lintResources(lint)).toEqual([]);
}

/**
 * The config entries of the golden case `mesh/sidecar-tcp-http-intentions` (web and api speak
 * HTTP; intentions on web), in the order they are written. The real-Envoy test of the golden
 * topologies writes the same ones, so the two cannot drift apart.
 */
export const webIntentionsConfig = [
  { Kind: 'service-defaults', Name: 'api', Protocol: 'http' },
  { Kind: 'service-defaults', Name: 'web', Protocol: 'http' },
  {
    Kind: 'service-intentions',
    Name: 'web',
    Sources: [
      { Name: 'frontend', Action: 'allow' },
      { Name: 'db', Action: 'deny' },
      { Name: '*', Action: 'deny' },
    ],
  },
  { Kind: 'mesh', Name: 'mesh', DefaultIntentionAction: 'allow' },
] as const;

/**
 * L7 intentions on `api` (HTTP) for the golden case `mesh/sidecar-l7-intentions`, written next to
 * `webIntentionsConfig` (mesh default allow): web's permissions in order, an L4 deny, and a
 * wildcard source's L7 deny. The real-Envoy test of the golden topologies writes the same entry.
 */
export const apiL7IntentionsConfig = {
  Kind: 'service-intentions',
  Name: 'api',
  Sources: [
    {
      Name: 'web',
      Permissions: [
        { Action: 'allow', HTTP: { PathPrefix: '/v1/', Methods: ['GET', 'HEAD'] } },
        { Action: 'deny', HTTP: { PathRegex: '/v[0-9]+/admin(/.*)?' } },
        {
          Action: 'deny',
          HTTP: {
            Header: [
              { Name: 'x-team', Prefix: 'ext-' },
              { Name: 'x-internal', Exact: 'true', Invert: true },
            ],
          },
        },
      ],
    },
    { Name: 'frontend', Action: 'deny' },
    { Name: '*', Permissions: [{ Action: 'deny', HTTP: { PathExact: '/', Methods: ['DELETE'] } }] },
  ],
} as const;

/**
 * The service-resolver entries of the golden case `peered/sidecar-resolver-failover-subsets`, in
 * B (api: subsets, failover to v2 then to cluster-a; db: redirected to cluster-a). The real-Envoy
 * test of the golden topologies writes the same ones, so the two cannot drift apart.
 */
export const resolverFailoverConfig = [
  {
    Kind: 'service-resolver',
    Name: 'api',
    DefaultSubset: 'v1',
    Subsets: {
      v1: { Filter: 'Service.Meta.version == v1' },
      v2: {
        Filter: 'Service.Meta.version == v2 and Service.Tags contains canary',
        OnlyPassing: true,
      },
    },
    Failover: { '*': { Targets: [{ ServiceSubset: 'v2' }, { Peer: 'cluster-a' }] } },
    ConnectTimeout: '2s',
    RequestTimeout: '15s',
    LoadBalancer: { Policy: 'ring_hash', RingHashConfig: { MinimumRingSize: 64 } },
  },
  {
    Kind: 'service-resolver',
    Name: 'db',
    Redirect: { Service: 'db', Peer: 'cluster-a' },
    LoadBalancer: { Policy: 'least_request', LeastRequestConfig: { ChoiceCount: 3 } },
  },
] as const;

/**
 * The entries of the golden case `peered/sidecar-router-splitter`, in B: `shop` (subsets v1, v2)
 * split 80/10/10 between v1, v2 (with a header set) and A's `api`, behind a router that sends
 * `/next/` GETs with `x-beta` to `shop-next` (rewrite, timeout, retries) and `/health?verbose=1`
 * to v2. The real-Envoy test of the golden topologies writes the same ones.
 */
export const routerSplitterConfig = [
  { Kind: 'service-defaults', Name: 'shop', Protocol: 'http' },
  { Kind: 'service-defaults', Name: 'shop-next', Protocol: 'http' },
  {
    Kind: 'service-resolver',
    Name: 'shop',
    DefaultSubset: 'v1',
    Subsets: {
      v1: { Filter: 'Service.Meta.version == v1' },
      v2: { Filter: 'Service.Meta.version == v2' },
    },
  },
  {
    Kind: 'service-splitter',
    Name: 'shop',
    Splits: [
      { Weight: 80, ServiceSubset: 'v1' },
      { Weight: 10, ServiceSubset: 'v2', RequestHeaders: { Set: { 'x-canary': '1' } } },
      { Weight: 10, Service: 'api', Peer: 'cluster-a' },
    ],
  },
  {
    Kind: 'service-router',
    Name: 'shop',
    Routes: [
      {
        Match: {
          HTTP: {
            PathPrefix: '/next/',
            Header: [{ Name: 'x-beta', Present: true }],
            Methods: ['GET'],
          },
        },
        Destination: {
          Service: 'shop-next',
          PrefixRewrite: '/',
          RequestTimeout: '5s',
          NumRetries: 2,
          RetryOnConnectFailure: true,
          RetryOnStatusCodes: [503],
        },
      },
      {
        Match: { HTTP: { PathExact: '/health', QueryParam: [{ Name: 'verbose', Exact: '1' }] } },
        Destination: { ServiceSubset: 'v2', IdleTimeout: '30s' },
      },
    ],
  },
] as const;
