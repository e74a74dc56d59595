/**
 * `service-splitter` and `service-router` as a user writes them: Consul's JSON accepted, every
 * mistake refused with the field and the fix, references checked against the committed entries
 * (protocols, subsets, peers, split loops), `config read` output written back unchanged; and the
 * chain they compile to (docs/architecture.md §5b "Routers and splitters").
 */
import { describe, expect, it } from 'vitest';
import { parseConfigEntry } from '../../src/catalog/config-entries.js';
import { checkEntryDelete, checkEntryWrite } from '../../src/catalog/entry-graph.js';
import type {
  ConfigEntry,
  ServiceResolverEntry,
  ServiceRouterEntry,
  ServiceSplitterEntry,
} from '../../src/catalog/types.js';
import { configEntryJson } from '../../src/api/consul-json.js';
import { compileRoutes } from '../../src/discovery-chain/routes.js';

function parse<T extends ConfigEntry>(input: Record<string, unknown>): T {
  const parsed = parseConfigEntry(input);
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.error));
  return parsed.value as T;
}

function errorsOf(input: Record<string, unknown>): string[] {
  const parsed = parseConfigEntry(input);
  return parsed.ok ? [] : parsed.error.map((e) => `${e.field}: ${e.problem}`);
}

const splitter = (splits: unknown[], name = 'api') => ({
  Kind: 'service-splitter',
  Name: name,
  Splits: splits,
});
const router = (routes: unknown[], name = 'api') => ({
  Kind: 'service-router',
  Name: name,
  Routes: routes,
});

describe('service-splitter, parsed', () => {
  it("takes Consul's example and gives it back unchanged", () => {
    const input = splitter([
      {
        Weight: 90,
        ServiceSubset: 'v1',
        RequestHeaders: { Set: { 'x-web-version': 'from-v1' } },
        ResponseHeaders: { Remove: ['x-debug'] },
      },
      { Weight: 9.99, ServiceSubset: 'v2' },
      { Weight: 0.01, Service: 'api-next' },
    ]);
    const entry = parse<ServiceSplitterEntry>(input);
    expect(configEntryJson({ entry, createIndex: 3, modifyIndex: 7 })).toEqual({
      ...input,
      CreateIndex: 3,
      ModifyIndex: 7,
    });
  });

  it('weights must sum to 100, each 0-100', () => {
    expect(errorsOf(splitter([{ Weight: 90 }, { Weight: 5, ServiceSubset: 'v2' }]))).toEqual([
      'Splits: weights sum to 95; they must sum to 100',
    ]);
    expect(errorsOf(splitter([{ Weight: 101 }]))).toContain(
      'Splits[0].Weight: required: a percentage from 0 to 100 (got 101)',
    );
    expect(errorsOf(splitter([]))).toEqual([
      'Splits: required: a JSON array of {Weight, Service, ServiceSubset}',
    ]);
  });

  it('refuses unknown fields, two splits to one place, and a subset on a peer', () => {
    expect(
      errorsOf(
        splitter([
          { Weight: 50, ServiceSubset: 'v1', Bogus: 1 },
          { Weight: 50, Service: 'api', ServiceSubset: 'v1' },
        ]),
      ),
    ).toEqual([
      'Splits[0].Bogus: unknown field (allowed here: Weight, Service, ServiceSubset, Namespace, Partition, Peer, RequestHeaders, ResponseHeaders)',
      'Splits[1]: sends to the same place as Splits[0]; merge them into one split',
    ]);
    expect(errorsOf(splitter([{ Weight: 100, Peer: 'cluster-a', ServiceSubset: 'v1' }]))).toEqual([
      "Splits[0].ServiceSubset: cannot be set together with Peer (a peer's subsets are not replicated)",
    ]);
  });
});

describe('service-router, parsed', () => {
  const full = router([
    {
      Match: {
        HTTP: {
          PathPrefix: '/v2/',
          Header: [
            { Name: 'x-debug', Present: true },
            { Name: 'x-env', Exact: 'canary', Invert: true },
          ],
          QueryParam: [{ Name: 'beta', Regex: '^(1|true)$' }],
          Methods: ['GET', 'POST'],
        },
      },
      Destination: {
        Service: 'api-v2',
        PrefixRewrite: '/',
        RequestTimeout: '2s',
        IdleTimeout: '30s',
        NumRetries: 3,
        RetryOnConnectFailure: true,
        RetryOn: ['gateway-error'],
        RetryOnStatusCodes: [503],
      },
    },
    {
      Match: { HTTP: { PathRegex: '/admin/[a-z]+', CaseInsensitive: true } },
      Destination: { ServiceSubset: 'v1' },
    },
  ]);

  it("takes Consul's fields and gives them back unchanged", () => {
    const entry = parse<ServiceRouterEntry>(full);
    const json = configEntryJson({ entry, createIndex: 3, modifyIndex: 7 });
    expect(json).toEqual({ ...full, CreateIndex: 3, ModifyIndex: 7 });
    expect(parse(json)).toEqual(entry);
  });

  it('refuses what Consul refuses, naming the field', () => {
    expect(
      errorsOf(
        router([
          { Match: { HTTP: { PathExact: '/a', PathPrefix: '/b' } } },
          { Match: { HTTP: { PathPrefix: 'v2' } } },
          { Match: { HTTP: { PathRegex: '/(?=x)' } } },
          { Match: { HTTP: { Header: [{ Name: 'x-a', Exact: 'a', Prefix: 'b' }] } } },
          { Match: { HTTP: { Methods: ['GET', 'GET', 'FETCH'] } } },
          { Match: { HTTP: { PathRegex: '/x' } }, Destination: { PrefixRewrite: '/' } },
          {
            Destination: {
              RetryOn: ['sometimes'],
              RetryOnStatusCodes: [42],
              RequestTimeout: 'soon',
            },
          },
          { Match: { HTTP: { PathPrefix: '/a', CaseInsensitive: 'yes' } } },
        ]),
      ),
    ).toEqual([
      'Routes[0].Match.HTTP: set only one of PathExact, PathPrefix and PathRegex',
      'Routes[1].Match.HTTP.PathPrefix: must start with "/" (got "v2")',
      'Routes[2].Match.HTTP.PathRegex: is not an RE2 regular expression (error parsing regexp: invalid or unsupported Perl syntax: `(?=`); Envoy matches with RE2',
      'Routes[3].Match.HTTP.Header[0]: set exactly one of Present, Exact, Prefix, Suffix and Regex',
      'Routes[4].Match.HTTP.Methods[1]: duplicate method GET',
      'Routes[4].Match.HTTP.Methods[2]: must be one of GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH (got "FETCH")',
      'Routes[5].Destination.PrefixRewrite: needs Match.HTTP.PathPrefix or PathExact (the part it replaces)',
      'Routes[6].Destination.RequestTimeout: must be a duration up to 1h such as "5s" or "500ms" (got "soon")',
      'Routes[6].Destination.RetryOn[0]: must be one of 5xx, gateway-error, reset, connect-failure, envoy-ratelimited, retriable-4xx, refused-stream, cancelled, deadline-exceeded, internal, resource-exhausted, unavailable (got "sometimes")',
      'Routes[6].Destination.RetryOnStatusCodes[0]: must be an HTTP status code 100-599 (got 42)',
      'Routes[7].Match.HTTP.CaseInsensitive: must be true or false (got "yes")',
    ]);
  });
});

describe('splitter and router references, checked on write', () => {
  const committed = (entries: ConfigEntry[]) => ({
    config: (kind: string, name: string) => {
      const entry = entries.find((e) => e.kind === kind && e.name === name);
      return entry && { entry };
    },
    configsOf: (kind: string) => entries.filter((e) => e.kind === kind).map((entry) => ({ entry })),
  });
  const problems = (entry: ConfigEntry, others: ConfigEntry[], peers: string[] = []) =>
    checkEntryWrite(entry, committed(others), peers).map((e) => `${e.field}: ${e.problem}`);
  const http = (name: string, protocol = 'http') =>
    parse({ Kind: 'service-defaults', Name: name, Protocol: protocol });
  const resolver = parse<ServiceResolverEntry>({
    Kind: 'service-resolver',
    Name: 'api',
    Subsets: { v1: { Filter: 'Service.Meta.version == v1' } },
  });

  it('a tcp service is refused with the fix', () => {
    const e = parse(splitter([{ Weight: 100, ServiceSubset: 'v1' }]));
    expect(problems(e, [resolver])).toEqual([
      `Name: api's protocol is "tcp"; a service-splitter needs HTTP: first write a service-defaults entry for api with Protocol "http" (or "http2", "grpc")`,
    ]);
    expect(problems(e, [resolver, http('api')])).toEqual([]);
  });

  it('unknown subsets and peers, and a service of another protocol, are refused', () => {
    const e = parse(
      splitter([
        { Weight: 50, ServiceSubset: 'v9' },
        { Weight: 25, Peer: 'cluster-z' },
        { Weight: 25, Service: 'billing' },
      ]),
    );
    expect(problems(e, [resolver, http('api'), http('billing', 'grpc')], ['cluster-a'])).toEqual([
      `Splits[0].ServiceSubset: "v9" is not a subset of api; define it in api's service-resolver first`,
      'Splits[1].Peer: "cluster-z" is not a peering of this cluster; establish it first (peerings: cluster-a)',
      `Splits[2].Service: billing's protocol is "grpc", api's is "http"; a chain has one protocol: set billing's service-defaults Protocol to "http"`,
    ]);
    const r = parse(router([{ Destination: { Service: 'api', ServiceSubset: 'v2' } }]));
    expect(problems(r, [resolver, http('api')])).toEqual([
      `Routes[0].Destination.ServiceSubset: "v2" is not a subset of api; define it in api's service-resolver first`,
    ]);
  });

  it('a splitter that splits back into itself is refused', () => {
    const others = [
      http('api'),
      http('api-next'),
      parse(
        splitter(
          [
            { Weight: 50, Service: 'api' },
            { Weight: 50, ServiceSubset: 'v1' },
          ],
          'api-next',
        ),
      ),
    ];
    const e = parse(
      splitter([
        { Weight: 50, Service: 'api-next' },
        { Weight: 50, ServiceSubset: 'v1' },
      ]),
    );
    expect(problems(e, [...others, resolver])).toEqual([
      'Splits: split in a loop (api → api-next → api); break the cycle',
    ]);
  });

  it("service-defaults may not take a router's service off HTTP", () => {
    const r = parse(router([{ Destination: { Service: 'api' } }]));
    expect(problems(http('api', 'tcp'), [http('api'), r])).toEqual([
      'Protocol: would make api "tcp", but the service-router api needs HTTP; delete that entry first',
    ]);
    expect(problems(http('api', 'http2'), [http('api'), r])).toEqual([]);
  });
});

describe('what a router or splitter relies on cannot be deleted or changed away', () => {
  const committed = (entries: ConfigEntry[]) => ({
    config: (kind: string, name: string) => {
      const entry = entries.find((e) => e.kind === kind && e.name === name);
      return entry && { entry };
    },
    configsOf: (kind: string) => entries.filter((e) => e.kind === kind).map((entry) => ({ entry })),
  });
  const deleting = (kind: ConfigEntry['kind'], name: string, entries: ConfigEntry[]) =>
    checkEntryDelete(kind, name, committed(entries)).map((e) => `${e.field}: ${e.problem}`);
  const writing = (entry: ConfigEntry, entries: ConfigEntry[]) =>
    checkEntryWrite(entry, committed(entries), []).map((e) => `${e.field}: ${e.problem}`);
  const defaults = (name: string, protocol = 'http') =>
    parse({ Kind: 'service-defaults', Name: name, Protocol: protocol });
  const resolver = (subsets: Record<string, unknown>) =>
    parse({ Kind: 'service-resolver', Name: 'api', Subsets: subsets });
  const v1 = { v1: { Filter: 'Service.Meta.version == v1' } };
  const canary = parse(router([{ Destination: { ServiceSubset: 'v1' } }]));
  const toAdmin = parse(router([{ Destination: { Service: 'admin' } }]));
  const split = parse(splitter([{ Weight: 100, ServiceSubset: 'v1' }]));

  it("the service-defaults that makes a router's service HTTP", () => {
    expect(deleting('service-defaults', 'api', [defaults('api'), resolver(v1), canary])).toEqual([
      `Name: service-defaults "api" is still needed by service-router "api" (Name: api's protocol is "tcp"; a service-router needs HTTP: first write a service-defaults entry for api with Protocol "http" (or "http2", "grpc")); change that entry first`,
    ]);
  });

  it("the service-defaults of a router's destination, deleted or set to another protocol", () => {
    const entries = [defaults('api'), defaults('admin'), toAdmin];
    const destination = `Routes[0].Destination.Service: admin's protocol is "tcp", api's is "http"; a chain has one protocol: set admin's service-defaults Protocol to "http"`;
    expect(deleting('service-defaults', 'admin', entries)).toEqual([
      `Name: service-defaults "admin" is still needed by service-router "api" (${destination}); change that entry first`,
    ]);
    expect(writing(defaults('admin', 'tcp'), entries)).toEqual([
      `Protocol: would break service-router "api" (${destination}); change that entry first`,
    ]);
    expect(writing(defaults('admin', 'http'), entries)).toEqual([]);
  });

  it('the proxy-defaults that gives a splitter its HTTP protocol', () => {
    const global = parse({
      Kind: 'proxy-defaults',
      Name: 'global',
      Config: { protocol: 'http' },
    });
    expect(deleting('proxy-defaults', 'global', [global, resolver(v1), split])).toEqual([
      expect.stringMatching(
        /^Name: proxy-defaults "global" is still needed by service-splitter "api" \(Name: api's protocol is "tcp"/,
      ),
    ]);
  });

  it('the resolver whose subsets a router or splitter names, deleted or rewritten without them', () => {
    const entries = [defaults('api'), resolver(v1), canary, split];
    const subset = `"v1" is not a subset of api; define it in api's service-resolver first`;
    expect(deleting('service-resolver', 'api', entries)).toEqual([
      `Name: service-resolver "api" is still needed by service-router "api" (Routes[0].Destination.ServiceSubset: ${subset}), service-splitter "api" (Splits[0].ServiceSubset: ${subset}); change those first`,
    ]);
    expect(writing(resolver({ v2: { Filter: 'Service.Meta.version == v2' } }), entries)).toEqual([
      `Subsets: would break service-router "api" (Routes[0].Destination.ServiceSubset: ${subset}), service-splitter "api" (Splits[0].ServiceSubset: ${subset}); change those first`,
    ]);
    expect(writing(resolver({ ...v1, v2: { Filter: '' } }), entries)).toEqual([]);
  });

  it('what no router or splitter needs is deleted freely', () => {
    expect(deleting('service-resolver', 'api', [defaults('api'), resolver(v1), toAdmin])).toEqual(
      [],
    );
    expect(deleting('service-defaults', 'web', [defaults('api'), defaults('web'), canary])).toEqual(
      [],
    );
  });

  it('the service-defaults that gives L7 intentions their HTTP protocol', () => {
    const l7 = parse({
      Kind: 'service-intentions',
      Name: 'api',
      Sources: [{ Name: 'web', Permissions: [{ Action: 'allow', HTTP: { PathPrefix: '/' } }] }],
    });
    expect(deleting('service-defaults', 'api', [defaults('api'), l7])).toEqual([
      expect.stringMatching(
        /^Name: service-defaults "api" is still needed: without it, "tcp" would break the L7 intentions of "api"/,
      ),
    ]);
  });
});

describe('the chain a router and splitter compile to', () => {
  const entries: ConfigEntry[] = [
    parse({
      Kind: 'service-resolver',
      Name: 'api',
      DefaultSubset: 'v1',
      Subsets: {
        v1: { Filter: 'Service.Meta.version == v1' },
        v2: { Filter: 'Service.Meta.version == v2' },
      },
    }),
    parse(
      splitter([
        { Weight: 80, ServiceSubset: 'v1' },
        { Weight: 20, Service: 'api-next' },
      ]),
    ),
    parse(
      splitter(
        [
          { Weight: 50, ServiceSubset: 'v2', Service: 'api' },
          { Weight: 50, Peer: 'cluster-a', Service: 'api' },
        ],
        'api-next',
      ),
    ),
    parse(
      router([{ Match: { HTTP: { PathPrefix: '/admin' } }, Destination: { Service: 'admin' } }]),
    ),
  ];
  const lookups = {
    resolver: (n: string) =>
      entries.find((e) => e.kind === 'service-resolver' && e.name === n) as ServiceResolverEntry,
    splitter: (n: string) =>
      entries.find((e) => e.kind === 'service-splitter' && e.name === n) as ServiceSplitterEntry,
    router: (n: string) =>
      entries.find((e) => e.kind === 'service-router' && e.name === n) as ServiceRouterEntry,
  };

  it('routes in order, then the catch-all; nested splits flattened with weights multiplied', () => {
    const routed = compileRoutes({ service: 'api', datacenter: 'dc1' }, lookups);
    const shape = routed?.routes.map((r) => ({
      prefix: r.match?.pathPrefix,
      splits: r.splits.map((s) => `${s.weight} ${s.chain.primary.id}`),
    }));
    expect(shape).toEqual([
      { prefix: '/admin', splits: ['100 admin.default.default.dc1'] },
      {
        prefix: undefined,
        splits: [
          '80 v1.api.default.default.dc1',
          '10 v2.api.default.default.dc1',
          '10 api.default.default.external.cluster-a',
        ],
      },
    ]);
  });

  it('a service with neither router nor splitter compiles as before (no routes)', () => {
    expect(compileRoutes({ service: 'admin', datacenter: 'dc1' }, lookups)).toBeUndefined();
  });
});
