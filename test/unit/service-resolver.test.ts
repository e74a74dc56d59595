/**
 * `service-resolver` as a user writes it: Consul's JSON accepted for what isthmus implements,
 * everything else refused with the field and the fix; references to peers, other services' subsets
 * and redirect loops checked against the committed entries; `config read` output written back
 * unchanged.
 */
import { describe, expect, it } from 'vitest';
import type { ConfigRecord } from '../../src/catalog/catalog.js';
import { parseConfigEntry } from '../../src/catalog/config-entries.js';
import { checkEntryWrite } from '../../src/catalog/entry-graph.js';
import type { ConfigEntry, ServiceResolverEntry } from '../../src/catalog/types.js';
import { configEntryJson } from '../../src/api/consul-json.js';

function parse(input: Record<string, unknown>): ServiceResolverEntry {
  const parsed = parseConfigEntry({ Kind: 'service-resolver', ...input });
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.error));
  return parsed.value as ServiceResolverEntry;
}

function errorsOf(input: Record<string, unknown>): string[] {
  const parsed = parseConfigEntry({ Kind: 'service-resolver', ...input });
  return parsed.ok ? [] : parsed.error.map((e) => `${e.field}: ${e.problem}`);
}

const consulExample = {
  Name: 'api',
  DefaultSubset: 'v1',
  Subsets: {
    v1: { Filter: 'Service.Meta.version == v1' },
    v2: {
      Filter: 'Service.Meta.version == "v2" and Service.Tags contains canary',
      OnlyPassing: true,
    },
  },
  Failover: {
    '*': {
      Targets: [
        { ServiceSubset: 'v2' },
        { Peer: 'cluster-a' },
        { Service: 'api', Datacenter: 'dc2' },
      ],
    },
  },
  ConnectTimeout: '15s',
  RequestTimeout: '1m30s',
  LoadBalancer: { Policy: 'ring_hash', RingHashConfig: { MinimumRingSize: 1024 } },
};

/** Consul's `Validate` rules for one hash policy (the second of a list). */
const hashPolicyRefusals: readonly [Record<string, unknown>, string][] = [
  [
    { Field: 'path', FieldValue: 'x' },
    'LoadBalancer.HashPolicies[1].Field: must be one of "", "header", "cookie", "query_parameter" (got "path")',
  ],
  [
    { Field: 'header', FieldValue: 'x-user', SourceIP: true },
    'LoadBalancer.HashPolicies[1].SourceIP: cannot hash both the source address and a header; use two hash policies',
  ],
  [
    { FieldValue: 'x-user', SourceIP: true },
    'LoadBalancer.HashPolicies[1].FieldValue: cannot be set with SourceIP (the source address is hashed)',
  ],
  [
    { Field: 'cookie' },
    'LoadBalancer.HashPolicies[1].FieldValue: required with Field "cookie" (its name)',
  ],
  [
    { FieldValue: 'x-user' },
    'LoadBalancer.HashPolicies[1].Field: required with FieldValue (one of header, cookie, query_parameter)',
  ],
  [
    { Terminal: true },
    'LoadBalancer.HashPolicies[1]: set Field and FieldValue, or SourceIP true (nothing to hash)',
  ],
  [
    { Field: 'header', FieldValue: 'x user' },
    'LoadBalancer.HashPolicies[1].FieldValue: must be an HTTP header name (got "x user")',
  ],
  [
    { Field: 'header', FieldValue: 'x-user', CookieConfig: { Session: true } },
    'LoadBalancer.HashPolicies[1].CookieConfig: only with Field "cookie"',
  ],
  [
    { Field: 'cookie', FieldValue: 'id', CookieConfig: { Session: true, TTL: '10s' } },
    'LoadBalancer.HashPolicies[1].CookieConfig.TTL: a session cookie has no TTL; remove TTL or set Session false',
  ],
  [
    { Field: 'cookie', FieldValue: 'id', CookieConfig: { TTL: 'a while' } },
    'LoadBalancer.HashPolicies[1].CookieConfig.TTL: must be a duration up to 8784h such as "1h" or "30m" (got "a while")',
  ],
  [
    { Field: 'cookie', FieldValue: 'id', CookieConfig: { Domain: 'x' } },
    'LoadBalancer.HashPolicies[1].CookieConfig.Domain: unknown field (allowed here: Session, TTL, Path)',
  ],
];

describe('parse service-resolver', () => {
  it("takes Consul's shape: subsets, failover targets, timeouts and load balancer", () => {
    const e = parse(consulExample);
    expect(e).toMatchObject({
      kind: 'service-resolver',
      name: 'api',
      defaultSubset: 'v1',
      subsets: {
        v1: { filter: 'Service.Meta.version == v1', onlyPassing: false },
        v2: { onlyPassing: true },
      },
      connectTimeoutMs: 15_000,
      requestTimeoutMs: 90_000,
      loadBalancer: { policy: 'ring_hash', ringHash: { minimumRingSize: 1024 } },
    });
    expect(e.failover['*']?.targets).toEqual([
      { service: '', serviceSubset: 'v2', peer: '', datacenter: '' },
      { service: '', serviceSubset: '', peer: 'cluster-a', datacenter: '' },
      { service: 'api', serviceSubset: '', peer: '', datacenter: 'dc2' },
    ]);
  });

  it('expands the older Service / Datacenters failover form into targets', () => {
    const e = parse({
      Name: 'api',
      Failover: { '*': { Service: 'backup', Datacenters: ['dc2', 'dc3'] } },
    });
    expect(e.failover['*']?.targets.map((t) => `${t.service}@${t.datacenter}`)).toEqual([
      'backup@dc2',
      'backup@dc3',
    ]);
  });

  it('a redirect to a peer', () => {
    expect(
      parse({ Name: 'api', Redirect: { Service: 'api', Peer: 'cluster-a' } }).redirect,
    ).toEqual({
      service: 'api',
      serviceSubset: '',
      peer: 'cluster-a',
      datacenter: '',
    });
  });

  it.each([
    [{ DefaultSubset: 'v9' }, 'DefaultSubset: "v9" is not one of Subsets; define it there'],
    [
      { Failover: { v3: { Targets: [{ Peer: 'p' }] } } },
      'Failover.v3: "v3" is not one of Subsets; use "*" or a defined subset',
    ],
    [
      { Failover: { '*': { Targets: [{ ServiceSubset: 'nope' }] } } },
      'Failover.*.Targets[0].ServiceSubset: "nope" is not one of Subsets; define it there',
    ],
    [
      { Redirect: { Service: 'x' }, Failover: { '*': { Targets: [{ Peer: 'p' }] } } },
      "Failover: cannot be set together with Redirect (fail over in the redirect target's resolver)",
    ],
    [
      { Redirect: { Service: 'api' } },
      'Redirect: redirects api to itself; name another Service, Datacenter or Peer',
    ],
    [
      { Redirect: { Service: 'x', Peer: 'p', Datacenter: 'dc2' } },
      'Redirect.Datacenter: cannot be set together with Peer (a peer has its own datacenters)',
    ],
    [
      { Redirect: { Service: 'x', Peer: 'p', ServiceSubset: 'v1' } },
      "Redirect.ServiceSubset: cannot be set together with Peer (a peer's subsets are not replicated)",
    ],
    [
      {
        Subsets: { v1: { Filter: '' } },
        Failover: { '*': { ServiceSubset: 'v1', Datacenters: ['dc2'] } },
      },
      'Failover.*.ServiceSubset: cannot be set together with Datacenter yet (subsets are resolved in this datacenter only)',
    ],
    [
      { Redirect: { SamenessGroup: 'g' } },
      'Redirect.SamenessGroup: not supported yet (sameness groups); remove the field',
    ],
    [
      {
        LoadBalancer: {
          Policy: 'least_request',
          HashPolicies: [{ Field: 'header', FieldValue: 'x' }],
        },
      },
      'LoadBalancer.HashPolicies: only with a hash-based Policy ("ring_hash" or "maglev"), not "least_request"',
    ],
    ...hashPolicyRefusals.map(([policy, error]): [Record<string, unknown>, string] => [
      { LoadBalancer: { Policy: 'maglev', HashPolicies: [{}, policy] } },
      error,
    ]),
    [
      { LoadBalancer: { Policy: 'least_connections' } },
      'LoadBalancer.Policy: must be one of "", "round_robin", "least_request", "ring_hash", "maglev", "random" (got "least_connections")',
    ],
    [
      { ConnectTimeout: 'soon' },
      'ConnectTimeout: must be a duration up to 1h such as "5s" or "500ms" (got "soon")',
    ],
    [
      { PrioritizeByLocality: { Mode: 'failover' } },
      'PrioritizeByLocality: not supported yet (locality-aware routing); remove the field',
    ],
    [{ Meta: { a: 'b' } }, expect.stringMatching(/^Meta: unknown field/)],
  ])('refuses %j', (extra, error) => {
    const input = { Name: 'api', ...extra } as Record<string, unknown>;
    expect(errorsOf(input)).toContainEqual(error);
  });

  it('refuses a subset filter it does not understand, naming the clause', () => {
    expect(
      errorsOf({ Name: 'api', Subsets: { v1: { Filter: 'Service.Meta.version matches "v.*"' } } }),
    ).toEqual([
      expect.stringMatching(
        /^Subsets\.v1\.Filter: "Service\.Meta\.version matches \\"v\.\*\\"" is not understood; isthmus reads clauses joined by "and"/,
      ),
    ]);
  });

  it("takes Consul's hash policies: header, cookie, query parameter, source IP, terminal", () => {
    const e = parse({
      Name: 'api',
      LoadBalancer: {
        Policy: 'ring_hash',
        HashPolicies: [
          { Field: 'header', FieldValue: 'x-user', Terminal: true },
          { Field: 'cookie', FieldValue: 'session', CookieConfig: { TTL: '1h', Path: '/' } },
          { Field: 'cookie', FieldValue: 'jar', CookieConfig: { Session: true } },
          { Field: 'query_parameter', FieldValue: 'user' },
          { SourceIP: true },
        ],
      },
    });
    expect(e.loadBalancer?.hashPolicies).toEqual([
      { field: 'header', fieldValue: 'x-user', sourceIp: false, terminal: true },
      {
        field: 'cookie',
        fieldValue: 'session',
        cookieConfig: { session: false, ttlMs: 3_600_000, path: '/' },
        sourceIp: false,
        terminal: false,
      },
      {
        field: 'cookie',
        fieldValue: 'jar',
        cookieConfig: { session: true, ttlMs: 0, path: '' },
        sourceIp: false,
        terminal: false,
      },
      { field: 'query_parameter', fieldValue: 'user', sourceIp: false, terminal: false },
      { field: '', fieldValue: '', sourceIp: true, terminal: false },
    ]);
    const json = configEntryJson({ entry: e, createIndex: 1, modifyIndex: 1 });
    expect(json).toMatchObject({
      LoadBalancer: {
        Policy: 'ring_hash',
        HashPolicies: [
          { Field: 'header', FieldValue: 'x-user', Terminal: true },
          { Field: 'cookie', FieldValue: 'session', CookieConfig: { TTL: '1h0m0s', Path: '/' } },
          { Field: 'cookie', FieldValue: 'jar', CookieConfig: { Session: true } },
          { Field: 'query_parameter', FieldValue: 'user' },
          { SourceIP: true },
        ],
      },
    });
    expect(parse(json as Record<string, unknown>)).toEqual(e);
  });

  it('what config read prints is accepted back unchanged', () => {
    const entry = parse(consulExample);
    const record: ConfigRecord = { entry, createIndex: 3, modifyIndex: 7 };
    const json = configEntryJson(record) as Record<string, unknown>;
    expect(json).toMatchObject({
      Kind: 'service-resolver',
      Name: 'api',
      DefaultSubset: 'v1',
      CreateIndex: 3,
    });
    expect(parse(json)).toEqual(entry);
    expect(configEntryJson({ entry: parse(json), createIndex: 3, modifyIndex: 7 })).toEqual(json);
    expect(json).toMatchObject({ ConnectTimeout: '15s', RequestTimeout: '1m30s' });
  });
});

describe('service-resolver references, checked on write', () => {
  const committed = (entries: ConfigEntry[]) => ({
    config: (kind: ConfigEntry['kind'], name: string) => {
      const entry = entries.find((e) => e.kind === kind && e.name === name);
      return entry && { entry };
    },
    configsOf: (kind: ConfigEntry['kind']) =>
      entries.filter((e) => e.kind === kind).map((entry) => ({ entry })),
  });
  const problems = (entry: ConfigEntry, others: ConfigEntry[], peers: string[] = []) =>
    checkEntryWrite(entry, committed(others), peers).map((e) => `${e.field}: ${e.problem}`);

  it('a peer must be a peering of this cluster', () => {
    const e = parse({ Name: 'api', Failover: { '*': { Targets: [{ Peer: 'cluster-z' }] } } });
    expect(problems(e, [], ['cluster-a'])).toEqual([
      'Failover.*.Targets[0].Peer: "cluster-z" is not a peering of this cluster; establish it first (peerings: cluster-a)',
    ]);
    expect(problems(e, [], ['cluster-a', 'cluster-z'])).toEqual([]);
  });

  it("another service's subset must be defined in its resolver", () => {
    const e = parse({ Name: 'web', Redirect: { Service: 'api', ServiceSubset: 'v2' } });
    expect(problems(e, [])).toEqual([
      'Redirect.ServiceSubset: "v2" is not a subset of api; define it in api\'s service-resolver first',
    ]);
    expect(
      problems(e, [parse({ Name: 'api', Subsets: { v2: { Filter: 'Service.Meta.v == 2' } } })]),
    ).toEqual([]);
  });

  it('redirect loops are refused, whichever entry closes them', () => {
    const a = parse({ Name: 'a', Redirect: { Service: 'b' } });
    const b = parse({ Name: 'b', Redirect: { Service: 'c' } });
    const c = parse({ Name: 'c', Redirect: { Service: 'a' } });
    expect(problems(c, [a, b])).toEqual([
      'Redirect: redirects in a loop (c → a → b → c); break the cycle',
    ]);
    expect(problems(b, [a])).toEqual([]);
    // A redirect to a peer or another datacenter ends the walk.
    const toPeer = parse({ Name: 'c', Redirect: { Service: 'a', Peer: 'p' } });
    expect(problems(toPeer, [a, b], ['p'])).toEqual([]);
  });
});
