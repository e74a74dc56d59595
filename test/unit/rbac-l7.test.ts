import { describe, expect, it } from 'vitest';
import { parseConfigEntry } from '../../src/catalog/config-entries.js';
import { checkIntentionProtocols } from '../../src/catalog/service-intentions.js';
import { Problems } from '../../src/problems.js';
import type { CatalogReader, ConfigEntry, ConfigEntryKind } from '../../src/catalog/types.js';
import { configEntryJson } from '../../src/api/consul-json.js';
import { rbacForDestination } from '../../src/snapshot/intentions.js';
import { httpRbacFilter, rbacFilter } from '../../src/xds/resources/rbac.js';
import '../../src/xds/registry.js';
import { RBAC as HttpRbac } from '../../src/gen/envoy/extensions/filters/http/rbac/v3/rbac.js';
import { RBAC as NetworkRbac } from '../../src/gen/envoy/extensions/filters/network/rbac/v3/rbac.js';
import {
  RBAC_Action,
  type Permission,
  type Principal,
  type RBAC as RbacRules,
} from '../../src/gen/envoy/config/rbac/v3/rbac.js';
import type { HeaderMatcher } from '../../src/gen/envoy/config/route/v3/route_components.js';
import type { StringMatcher } from '../../src/gen/envoy/type/matcher/v3/string.js';

/**
 * L7 intentions → Envoy HTTP RBAC, judged by evaluating the generated RBAC the way Envoy does
 * (docs/architecture.md §5 "Intentions → RBAC"): a small evaluator of the matchers isthmus emits,
 * with RE2's full-match semantics for safe_regex (the patterns here mean the same in JavaScript).
 */
const td = 'a.consul';
const peerTd = 'b.consul';
const spiffe = (svc: string, trust = td) => `spiffe://${trust}/ns/default/dc/dc1/svc/${svc}`;
const gateway = `spiffe://${td}/gateway/mesh/dc/dc1`;

interface Request {
  readonly from: string;
  readonly method?: string;
  readonly path?: string;
  readonly headers?: Readonly<Record<string, string>>;
}

function entry(input: unknown): ConfigEntry {
  const parsed = parseConfigEntry(input);
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.error));
  return parsed.value;
}

function catalogOf(entries: readonly unknown[]): CatalogReader {
  const all = entries.map(entry);
  return {
    configEntry: (kind: ConfigEntryKind, name: string) =>
      all.find((e) => e.kind === kind && e.name === name),
    configEntries: (kind: ConfigEntryKind) => all.filter((e) => e.kind === kind),
  } as unknown as CatalogReader;
}

const full = (regex: string, value: string) => new RegExp(`^(?:${regex})$`, 'u').test(value);

function stringMatches(m: StringMatcher | undefined, value: string): boolean {
  const p = m?.matchPattern;
  switch (p?.$case) {
    case 'exact':
      return value === p.value;
    case 'prefix':
      return value.startsWith(p.value);
    case 'suffix':
      return value.endsWith(p.value);
    case 'safeRegex':
      return full(p.value.regex, value);
    default:
      throw new Error(`unexpected string matcher ${p?.$case}`);
  }
}

function headersOf(r: Request): Record<string, string> {
  return { ':method': r.method ?? 'GET', ':path': r.path ?? '/', ...r.headers };
}

function headerMatches(h: HeaderMatcher, r: Request): boolean {
  const value = headersOf(r)[h.name];
  const s = h.headerMatchSpecifier;
  let hit: boolean;
  if (s?.$case === 'presentMatch') hit = value !== undefined;
  else if (s?.$case === 'stringMatch') hit = value !== undefined && stringMatches(s.value, value);
  else throw new Error(`unexpected header matcher ${s?.$case}`);
  return h.invertMatch ? !hit : hit;
}

function permits(p: Permission, r: Request): boolean {
  const rule = p.rule;
  switch (rule?.$case) {
    case 'any':
      return true;
    case 'andRules':
      return rule.value.rules.every((x) => permits(x, r));
    case 'notRule':
      return !permits(rule.value, r);
    case 'header':
      return headerMatches(rule.value, r);
    case 'urlPath': {
      const m = rule.value.rule;
      if (m?.$case !== 'path') throw new Error('unexpected path matcher');
      return stringMatches(m.value, (r.path ?? '/').split('?')[0]!);
    }
    default:
      throw new Error(`unexpected permission ${rule?.$case}`);
  }
}

/** The caller: its certificate (ours, or our gateway's for a peer) and the XFCC it arrives with. */
function identifies(p: Principal, r: Request): boolean {
  const id = p.identifier;
  const viaGateway = !r.from.startsWith(`spiffe://${td}/`);
  switch (id?.$case) {
    case 'authenticated':
      return stringMatches(id.value.principalName, viaGateway ? gateway : r.from);
    case 'andIds':
      return id.value.ids.every((x) => identifies(x, r));
    case 'orIds':
      return id.value.ids.some((x) => identifies(x, r));
    case 'notId':
      return !identifies(id.value, r);
    case 'header':
      return headerMatches(id.value, {
        ...r,
        headers: viaGateway ? { 'x-forwarded-client-cert': `By=${gateway};URI=${r.from}` } : {},
      });
    default:
      throw new Error(`unexpected principal ${id?.$case}`);
  }
}

function decision(rules: RbacRules, r: Request): 'allowed' | 'denied' {
  const matched = Object.values(rules.policies).some(
    (policy) =>
      policy.permissions.some((p) => permits(p, r)) &&
      policy.principals.some((p) => identifies(p, r)),
  );
  const allow = rules.action === RBAC_Action.ALLOW ? matched : !matched;
  return allow ? 'allowed' : 'denied';
}

function httpRules(entries: readonly unknown[], destination = 'api'): RbacRules {
  const rbac = rbacForDestination(catalogOf(entries), destination, td, () => peerTd, true);
  const typed = httpRbacFilter(rbac).configType;
  if (typed?.$case !== 'typedConfig') throw new Error('no typed config');
  return HttpRbac.decode(typed.value.value).rules!;
}

const meshDeny = { Kind: 'mesh', Name: 'mesh', DefaultIntentionAction: 'deny' };
const meshAllow = { Kind: 'mesh', Name: 'mesh', DefaultIntentionAction: 'allow' };
const intentions = (name: string, ...sources: unknown[]) => ({
  Kind: 'service-intentions',
  Name: name,
  Sources: sources,
});
const getAllowed = {
  Action: 'allow',
  HTTP: { PathPrefix: '/allowed/', Methods: ['GET'] },
};

describe('L7 intentions as HTTP RBAC', () => {
  it('default deny: only the permitted method and path pass, for a local and a peer source', () => {
    const rules = httpRules([
      meshDeny,
      intentions(
        'api',
        { Name: 'web', Permissions: [getAllowed] },
        { Name: 'web', Peer: 'b', Permissions: [getAllowed] },
      ),
    ]);
    for (const from of [spiffe('web'), spiffe('web', peerTd)]) {
      expect(decision(rules, { from, path: '/allowed/x' })).toBe('allowed');
      expect(decision(rules, { from, path: '/allowed/x?q=1' })).toBe('allowed');
      expect(decision(rules, { from, method: 'POST', path: '/allowed/x' })).toBe('denied');
      expect(decision(rules, { from, path: '/other' })).toBe('denied');
    }
    expect(decision(rules, { from: spiffe('db'), path: '/allowed/x' })).toBe('denied');
    expect(decision(rules, { from: spiffe('db', peerTd), path: '/allowed/x' })).toBe('denied');
    expect(Object.keys(rules.policies)).toEqual([
      'consul-intentions-layer7-0',
      'consul-intentions-layer7-1',
    ]);
  });

  it('default allow: allow permissions alone change nothing, a trailing deny closes the rest', () => {
    const open = httpRules([
      meshAllow,
      intentions('api', { Name: 'web', Permissions: [getAllowed] }),
    ]);
    expect(decision(open, { from: spiffe('web'), method: 'POST', path: '/other' })).toBe('allowed');
    expect(Object.keys(open.policies)).toEqual([]);
    const closed = httpRules([
      meshAllow,
      intentions('api', {
        Name: 'web',
        Permissions: [getAllowed, { Action: 'deny', HTTP: { PathPrefix: '/' } }],
      }),
    ]);
    expect(decision(closed, { from: spiffe('web'), path: '/allowed/x' })).toBe('allowed');
    expect(decision(closed, { from: spiffe('web'), method: 'DELETE', path: '/allowed/x' })).toBe(
      'denied',
    );
    expect(decision(closed, { from: spiffe('web'), path: '/other' })).toBe('denied');
    expect(decision(closed, { from: spiffe('db'), path: '/other' })).toBe('allowed');
  });

  it('permissions are ordered: an earlier deny wins over a later allow', () => {
    const rules = httpRules([
      meshDeny,
      intentions('api', {
        Name: 'web',
        Permissions: [
          { Action: 'deny', HTTP: { PathExact: '/v2/admin' } },
          { Action: 'allow', HTTP: { PathPrefix: '/v2/' } },
          { Action: 'allow', HTTP: { PathRegex: '/healthz|/readyz', Methods: ['GET', 'HEAD'] } },
        ],
      }),
    ]);
    const web = (method: string, path: string) =>
      decision(rules, { from: spiffe('web'), method, path });
    expect(web('POST', '/v2/widgets')).toBe('allowed');
    expect(web('GET', '/v2/admin')).toBe('denied');
    expect(web('HEAD', '/readyz')).toBe('allowed');
    expect(web('POST', '/healthz')).toBe('denied');
    expect(web('GET', '/healthzz')).toBe('denied');
  });

  it('header matches: exact, prefix, suffix, regex, present and inverted', () => {
    const rules = httpRules([
      meshDeny,
      intentions('api', {
        Name: 'web',
        Permissions: [
          { Action: 'deny', HTTP: { Header: [{ Name: 'x-debug', Present: true }] } },
          {
            Action: 'allow',
            HTTP: {
              Header: [
                { Name: 'x-team', Exact: 'blue' },
                { Name: 'x-client', Prefix: 'mobile-' },
                { Name: 'x-host', Suffix: '.internal' },
                { Name: 'x-version', Regex: 'v[0-9]+' },
                { Name: 'x-canary', Exact: 'yes', Invert: true },
              ],
            },
          },
        ],
      }),
    ]);
    const good = {
      'x-team': 'blue',
      'x-client': 'mobile-ios',
      'x-host': 'a.internal',
      'x-version': 'v12',
    };
    const web = (headers: Record<string, string>) =>
      decision(rules, { from: spiffe('web'), headers });
    expect(web(good)).toBe('allowed');
    expect(web({ ...good, 'x-canary': 'no' })).toBe('allowed');
    expect(web({ ...good, 'x-canary': 'yes' })).toBe('denied');
    expect(web({ ...good, 'x-team': 'red' })).toBe('denied');
    expect(web({ ...good, 'x-client': 'web' })).toBe('denied');
    expect(web({ ...good, 'x-host': 'a.example' })).toBe('denied');
    expect(web({ ...good, 'x-version': 'v1beta' })).toBe('denied');
    expect(web({ ...good, 'x-debug': '' })).toBe('denied');
  });

  it('precedence: an exact L7 source is not widened by a wildcard allow, nor a wildcard L7 by an exact deny', () => {
    const rules = httpRules([
      meshDeny,
      intentions(
        'api',
        { Name: 'web', Permissions: [getAllowed] },
        { Name: 'db', Action: 'deny' },
        { Name: '*', Action: 'allow' },
      ),
    ]);
    expect(decision(rules, { from: spiffe('web'), method: 'POST', path: '/x' })).toBe('denied');
    expect(decision(rules, { from: spiffe('web'), path: '/allowed/1' })).toBe('allowed');
    expect(decision(rules, { from: spiffe('db'), path: '/allowed/1' })).toBe('denied');
    expect(decision(rules, { from: spiffe('cache'), method: 'POST', path: '/x' })).toBe('allowed');

    const wildL7 = httpRules([
      meshAllow,
      intentions(
        'api',
        { Name: 'web', Action: 'allow' },
        {
          Name: '*',
          Permissions: [{ Action: 'deny', HTTP: { PathPrefix: '/admin' } }],
        },
      ),
    ]);
    expect(decision(wildL7, { from: spiffe('cache'), path: '/admin/x' })).toBe('denied');
    expect(decision(wildL7, { from: spiffe('cache'), path: '/x' })).toBe('allowed');
    expect(decision(wildL7, { from: spiffe('web'), path: '/admin/x' })).toBe('allowed');
  });

  it('an exact destination beats "*" for the same source', () => {
    const rules = httpRules([
      meshDeny,
      intentions('api', { Name: 'web', Permissions: [getAllowed] }),
      intentions('*', { Name: 'web', Action: 'allow' }),
    ]);
    expect(decision(rules, { from: spiffe('web'), method: 'POST', path: '/x' })).toBe('denied');
    expect(decision(rules, { from: spiffe('web'), path: '/allowed/x' })).toBe('allowed');
  });

  it('L4-only intentions keep their policy names and shape', () => {
    const rules = httpRules([
      meshAllow,
      intentions('api', { Name: 'web', Action: 'allow' }, { Name: '*', Action: 'deny' }),
    ]);
    expect(Object.keys(rules.policies)).toEqual(['consul-intentions-layer4-0']);
    expect(decision(rules, { from: spiffe('web'), method: 'POST' })).toBe('allowed');
    expect(decision(rules, { from: spiffe('db') })).toBe('denied');
  });

  it('on a TCP listener an L7 source counts as deny (Consul), never as allow', () => {
    const catalog = catalogOf([
      meshDeny,
      intentions('api', { Name: 'web', Permissions: [getAllowed] }),
    ]);
    const rbac = rbacForDestination(catalog, 'api', td, () => peerTd, false);
    const typed = rbacFilter(rbac).configType;
    if (typed?.$case !== 'typedConfig') throw new Error('no typed config');
    const rules = NetworkRbac.decode(typed.value.value).rules!;
    expect(rules.action).toBe(RBAC_Action.ALLOW);
    expect(Object.keys(rules.policies)).toEqual([]);
  });
});

describe('L7 permissions on write', () => {
  it('round-trip through config read (Consul JSON, methods upper-cased)', () => {
    const input = intentions('api', {
      Name: 'web',
      Peer: 'b',
      Permissions: [
        { Action: 'allow', HTTP: { PathPrefix: '/allowed/', Methods: ['get', 'HEAD'] } },
        { Action: 'deny', HTTP: { Header: [{ Name: 'x-debug', Present: true, Invert: true }] } },
      ],
    });
    const json = configEntryJson({ entry: entry(input), createIndex: 1, modifyIndex: 1 }) as {
      Sources: unknown[];
    };
    expect(json.Sources).toEqual([
      {
        Name: 'web',
        Peer: 'b',
        Permissions: [
          { Action: 'allow', HTTP: { PathPrefix: '/allowed/', Methods: ['GET', 'HEAD'] } },
          { Action: 'deny', HTTP: { Header: [{ Name: 'x-debug', Present: true, Invert: true }] } },
        ],
        Type: 'consul',
      },
    ]);
    expect(entry({ Kind: 'service-intentions', ...json, Name: 'api' })).toEqual(entry(input));
  });

  const committed = (entries: readonly unknown[]) => {
    const all = entries.map((e) => ({ entry: entry(e) }));
    return {
      config: (kind: ConfigEntryKind, name: string) =>
        all.find((r) => r.entry.kind === kind && r.entry.name === name),
      configsOf: (kind: ConfigEntryKind) => all.filter((r) => r.entry.kind === kind),
    };
  };
  const problems = (e: unknown, existing: readonly unknown[]) => {
    const p = new Problems();
    checkIntentionProtocols(entry(e), committed(existing), p);
    return p.list.map((x) => x.field);
  };
  const l7 = intentions('api', { Name: 'web', Permissions: [getAllowed] });
  const httpApi = { Kind: 'service-defaults', Name: 'api', Protocol: 'http' };

  it('needs an HTTP-family destination, from service-defaults or proxy-defaults', () => {
    expect(problems(l7, [])).toEqual(['Sources[0].Permissions']);
    expect(problems(l7, [httpApi])).toEqual([]);
    expect(
      problems(l7, [{ Kind: 'proxy-defaults', Name: 'global', Config: { protocol: 'grpc' } }]),
    ).toEqual([]);
    expect(problems(intentions('api', { Name: 'web', Action: 'allow' }), [])).toEqual([]);
  });

  it('refuses a protocol change that would leave L7 intentions on a tcp service', () => {
    expect(problems({ ...httpApi, Protocol: 'tcp' }, [httpApi, l7])).toEqual(['Protocol']);
    expect(problems({ ...httpApi, Protocol: 'http2' }, [httpApi, l7])).toEqual([]);
    const global = { Kind: 'proxy-defaults', Name: 'global', Config: { protocol: 'http' } };
    expect(problems({ ...global, Config: {} }, [global, l7])).toEqual(['Config.protocol']);
    expect(problems({ ...global, Config: {} }, [global, httpApi, l7])).toEqual([]);
  });
});
