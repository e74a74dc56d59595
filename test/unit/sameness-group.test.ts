/**
 * `sameness-group` as a user writes it (Consul's JSON; bad input refused naming the field), what
 * it does to the discovery chain (failover through its members in order, without a resolver per
 * service) and to exports (`Consumers: [{SamenessGroup}]`), and the references between entries
 * checked on write and delete: groups, and subsets another resolver still names.
 */
import { describe, expect, it } from 'vitest';
import { configEntryJson } from '../../src/api/consul-json.js';
import { parseConfigEntry } from '../../src/catalog/config-entries.js';
import { checkEntryDelete, checkEntryWrite } from '../../src/catalog/entry-graph.js';
import { consumerPeers } from '../../src/catalog/sameness-group.js';
import type {
  ConfigEntry,
  SamenessGroupEntry,
  ServiceResolverEntry,
} from '../../src/catalog/types.js';
import { compileChain } from '../../src/discovery-chain/compile.js';
import type { SamenessLookup } from '../../src/discovery-chain/sameness.js';

function parse<E extends ConfigEntry>(input: Record<string, unknown>): E {
  const parsed = parseConfigEntry(input);
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.error));
  return parsed.value as E;
}
const group = (input: Record<string, unknown>) =>
  parse<SamenessGroupEntry>({ Kind: 'sameness-group', ...input });
const resolver = (input: Record<string, unknown>) =>
  parse<ServiceResolverEntry>({ Kind: 'service-resolver', ...input });

function errorsOf(input: Record<string, unknown>): string[] {
  const parsed = parseConfigEntry({ Kind: 'sameness-group', ...input });
  return parsed.ok ? [] : parsed.error.map((e) => `${e.field}: ${e.problem}`);
}

const committed = (entries: ConfigEntry[]) => ({
  config: (kind: ConfigEntry['kind'], name: string) => {
    const entry = entries.find((e) => e.kind === kind && e.name === name);
    return entry && { entry };
  },
  configsOf: (kind: ConfigEntry['kind']) =>
    entries.filter((e) => e.kind === kind).map((entry) => ({ entry })),
});
const writeProblems = (entry: ConfigEntry, others: ConfigEntry[], peers: string[] = []) =>
  checkEntryWrite(entry, committed(others), peers).map((e) => `${e.field}: ${e.problem}`);
const deleteProblems = (kind: ConfigEntry['kind'], name: string, entries: ConfigEntry[]) =>
  checkEntryDelete(kind, name, committed(entries)).map((e) => `${e.field}: ${e.problem}`);

const consulExample = {
  Kind: 'sameness-group',
  Name: 'products',
  DefaultForFailover: true,
  IncludeLocal: true,
  Members: [{ Peer: 'cluster-a' }, { Peer: 'cluster-c' }],
};

describe('sameness-group entry', () => {
  it("reads Consul's JSON, and config read gives back what was written", () => {
    const g = group(consulExample);
    expect(g).toEqual({
      kind: 'sameness-group',
      name: 'products',
      defaultForFailover: true,
      includeLocal: true,
      members: [{ peer: 'cluster-a' }, { peer: 'cluster-c' }],
    });
    expect(configEntryJson({ entry: g, createIndex: 1, modifyIndex: 2 })).toEqual({
      ...consulExample,
      CreateIndex: 1,
      ModifyIndex: 2,
    });
  });

  it.each([
    [{ Name: 'g' }, 'Members: required: a JSON array of {Peer} or {Partition}, in failover order'],
    [
      { Name: 'g', Members: [{}] },
      'Members[0]: must set exactly one of Peer (a cluster peer) or Partition ("default")',
    ],
    [
      { Name: 'g', Members: [{ Peer: 'a', Partition: 'default' }] },
      'Members[0]: must set exactly one of Peer (a cluster peer) or Partition ("default")',
    ],
    [
      { Name: 'g', Members: [{ Partition: 'east' }] },
      'Members[0].Partition: "east" is not allowed: only "default" (isthmus has one partition: this cluster)',
    ],
    [
      { Name: 'g', Members: [{ Peer: 'a' }, { Peer: 'b' }, { Peer: 'a' }] },
      'Members[2]: duplicate of Members[0] (peer a); list each member once',
    ],
    [
      { Name: 'g', Members: [{ Peer: 'a' }], DefaultForFailover: 'yes' },
      'DefaultForFailover: must be true or false (got "yes")',
    ],
    [
      { Name: 'g', Members: [{ Peer: 'a' }], Extra: 1 },
      'Extra: unknown field (allowed here: Kind, Name, Namespace, Partition, CreateIndex, ModifyIndex, DefaultForFailover, IncludeLocal, Members)',
    ],
  ])('refuses %j naming the field', (input, problem) => {
    expect(errorsOf(input)).toEqual([problem]);
  });

  it('member peers must be peerings, and only one group is the default for failover', () => {
    const g = group(consulExample);
    expect(writeProblems(g, [], ['cluster-a'])).toEqual([
      'Members[1].Peer: "cluster-c" is not a peering of this cluster; establish it first (peerings: cluster-a)',
    ]);
    const other = group({ ...consulExample, Name: 'other' });
    expect(writeProblems(g, [other], ['cluster-a', 'cluster-c'])).toEqual([
      'DefaultForFailover: sameness-group "other" is already the default for failover; set it false there first',
    ]);
    // Rewriting the default group itself is fine.
    expect(writeProblems(g, [g], ['cluster-a', 'cluster-c'])).toEqual([]);
  });

  it('a resolver or an export naming a group needs it; the group cannot be deleted while named', () => {
    const r = resolver({ Name: 'api', Failover: { '*': { SamenessGroup: 'products' } } });
    const e = parse<ConfigEntry>({
      Kind: 'exported-services',
      Name: 'default',
      Services: [{ Name: 'api', Consumers: [{ SamenessGroup: 'products' }] }],
    });
    expect(writeProblems(r, [])).toEqual([
      'Failover.*.SamenessGroup: "products" is not a sameness-group; write that entry first',
    ]);
    expect(writeProblems(e, [])).toEqual([
      'Services[0].Consumers[0].SamenessGroup: "products" is not a sameness-group; write that entry first',
    ]);
    const g = group(consulExample);
    expect(writeProblems(r, [g])).toEqual([]);
    expect(deleteProblems('sameness-group', 'products', [g, r, e])).toEqual([
      'Name: sameness-group "products" is still named by service-resolver "api" (Failover.*), exported-services "default" (Services[0].Consumers); change those first',
    ]);
    expect(deleteProblems('sameness-group', 'products', [g])).toEqual([]);
  });

  it('a failover rule is either a group or targets', () => {
    const parsed = parseConfigEntry({
      Kind: 'service-resolver',
      Name: 'api',
      Failover: { '*': { SamenessGroup: 'g', Targets: [{ Peer: 'a' }] } },
    });
    expect(parsed.ok ? [] : parsed.error.map((e) => `${e.field}: ${e.problem}`)).toEqual([
      'Failover.*.Targets: cannot be set together with SamenessGroup (the group names the targets)',
    ]);
  });
});

describe('sameness groups in the discovery chain', () => {
  const lookup =
    (...entries: ServiceResolverEntry[]) =>
    (name: string) =>
      entries.find((e) => e.name === name);
  const groups = (...gs: SamenessGroupEntry[]): SamenessLookup => ({
    group: (name) => gs.find((g) => g.name === name),
    defaultGroup: () => gs.find((g) => g.defaultForFailover),
  });
  const ids = (c: ReturnType<typeof compileChain>) => [
    c.primary.id,
    ...c.failover.map((t) => t.id),
  ];
  const req = { service: 'api', datacenter: 'dc1' };

  it('with a default group, a service without a resolver fails over through its members in order', () => {
    const c = compileChain(req, lookup(), groups(group(consulExample)));
    expect(c.isDefault).toBe(false);
    expect(ids(c)).toEqual([
      'api.default.default.dc1',
      'api.default.default.external.cluster-a',
      'api.default.default.external.cluster-c',
    ]);
  });

  it('the local partition listed as a member is the primary, not a failover target', () => {
    const g = group({
      Name: 'g',
      DefaultForFailover: true,
      Members: [{ Peer: 'b' }, { Partition: 'default' }],
    });
    expect(ids(compileChain(req, lookup(), groups(g)))).toEqual([
      'api.default.default.dc1',
      'api.default.default.external.b',
    ]);
  });

  it("without DefaultForFailover nothing changes; a resolver's own failover wins over the default", () => {
    const g = group({ ...consulExample, DefaultForFailover: false });
    const plain = compileChain(req, lookup(), groups(g));
    expect(plain.isDefault).toBe(true);
    expect(ids(plain)).toEqual(['api.default.default.dc1']);
    const own = resolver({ Name: 'api', Failover: { '*': { Targets: [{ Peer: 'cluster-z' }] } } });
    expect(ids(compileChain(req, lookup(own), groups(group(consulExample))))).toEqual([
      'api.default.default.dc1',
      'api.default.default.external.cluster-z',
    ]);
  });

  it('a resolver naming a group fails over through that group, keeping its own subset', () => {
    const g = group({ Name: 'g', Members: [{ Partition: 'default' }, { Peer: 'b' }] });
    const r = resolver({
      Name: 'api',
      DefaultSubset: 'v1',
      Subsets: { v1: { Filter: 'Service.Meta.version == v1' } },
      Failover: { '*': { SamenessGroup: 'g' } },
    });
    expect(ids(compileChain(req, lookup(r), groups(g)))).toEqual([
      'v1.api.default.default.dc1',
      'api.default.default.external.b',
    ]);
  });

  it('a redirect to a peer ends the chain: no sameness failover from there', () => {
    const r = resolver({ Name: 'api', Redirect: { Peer: 'cluster-a' } });
    expect(ids(compileChain(req, lookup(r), groups(group(consulExample))))).toEqual([
      'api.default.default.external.cluster-a',
    ]);
  });
});

describe('exports to a sameness group', () => {
  it('names every peer member of the group, once', () => {
    const g = group({ Name: 'g', IncludeLocal: true, Members: [{ Peer: 'a' }, { Peer: 'b' }] });
    const byName = (n: string) => (n === 'g' ? g : undefined);
    expect(consumerPeers([{ samenessGroup: 'g' }, { peer: 'b' }, { peer: 'c' }], byName)).toEqual([
      'a',
      'b',
      'c',
    ]);
    expect(consumerPeers([{ samenessGroup: 'missing' }], byName)).toEqual([]);
  });
});

describe('subsets another resolver names (Consul refuses what its compiler would fail on)', () => {
  const api = resolver({
    Name: 'api',
    Subsets: {
      v1: { Filter: 'Service.Meta.version == v1' },
      v2: { Filter: 'Service.Meta.version == v2' },
    },
  });
  const web = resolver({
    Name: 'web',
    Failover: { '*': { Targets: [{ Service: 'api', ServiceSubset: 'v2' }] } },
  });
  const admin = resolver({ Name: 'admin', Redirect: { Service: 'api', ServiceSubset: 'v1' } });

  it('deleting the resolver is refused while its subsets are named', () => {
    expect(deleteProblems('service-resolver', 'api', [api, web, admin])).toEqual([
      'Subsets.v2: still named by service-resolver "web" (Failover.*.Targets[0]); change that entry first',
      'Subsets.v1: still named by service-resolver "admin" (Redirect); change that entry first',
    ]);
    expect(deleteProblems('service-resolver', 'api', [api])).toEqual([]);
  });

  it('rewriting it without a named subset is refused; keeping the subset is fine', () => {
    const onlyV1 = resolver({
      Name: 'api',
      Subsets: { v1: { Filter: 'Service.Meta.version == v1' } },
    });
    expect(writeProblems(onlyV1, [api, web, admin])).toEqual([
      'Subsets.v2: still named by service-resolver "web" (Failover.*.Targets[0]); change that entry first',
    ]);
    expect(writeProblems(api, [api, web, admin])).toEqual([]);
  });
});
