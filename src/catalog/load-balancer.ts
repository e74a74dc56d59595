import { parseDurationSeconds } from './checks.js';
import {
  type JsonObject,
  type Problems,
  at,
  readArray,
  readBool,
  readEnum,
  readInt,
  readObject,
  readOptionalObject,
  readString,
} from './input.js';
import { checkHeaderName } from './routing-input.js';
import type { HashPolicy, LoadBalancerPolicy, ResolverLoadBalancer } from './types.js';

/**
 * A `service-resolver`'s `LoadBalancer` in Consul's JSON shape (Consul `structs.LoadBalancer`),
 * checked with the rules of Consul's `ServiceResolverConfigEntry.Validate`: a config block only
 * with its policy, `HashPolicies` only with a hash-based policy, and in each hash policy either a
 * `Field` with its `FieldValue` or `SourceIP`, a `CookieConfig` only for cookies and never a TTL
 * on a session cookie (docs/architecture.md §5b "Load balancing").
 */
const lbPolicies: readonly LoadBalancerPolicy[] = [
  'round_robin',
  'least_request',
  'ring_hash',
  'maglev',
  'random',
];
const hashFields = ['header', 'cookie', 'query_parameter'] as const;
const hashPolicyFields = ['Field', 'FieldValue', 'CookieConfig', 'SourceIP', 'Terminal'];
/** Envoy rejects no cookie TTL, but a year is already far past any sticky session. */
const maxCookieTtlSeconds = 366 * 24 * 3600;

export function readLoadBalancer(obj: JsonObject, p: Problems): ResolverLoadBalancer | undefined {
  const lb = readOptionalObject(
    obj,
    'LoadBalancer',
    '',
    ['Policy', 'RingHashConfig', 'LeastRequestConfig', 'HashPolicies'],
    p,
  );
  if (!lb) return undefined;
  const policy = readEnum(lb, 'Policy', 'LoadBalancer', p, ['', ...lbPolicies] as const, '');
  const ring = readOptionalObject(
    lb,
    'RingHashConfig',
    'LoadBalancer',
    ['MinimumRingSize', 'MaximumRingSize'],
    p,
  );
  const least = readOptionalObject(lb, 'LeastRequestConfig', 'LoadBalancer', ['ChoiceCount'], p);
  if (ring && policy !== 'ring_hash')
    p.add('LoadBalancer.RingHashConfig', 'only with Policy "ring_hash"');
  if (least && policy !== 'least_request')
    p.add('LoadBalancer.LeastRequestConfig', 'only with Policy "least_request"');
  const max = 8_388_608;
  const minimumRingSize = ring
    ? readInt(ring, 'MinimumRingSize', 'LoadBalancer.RingHashConfig', p, 1, max, 0)
    : 0;
  const maximumRingSize = ring
    ? readInt(ring, 'MaximumRingSize', 'LoadBalancer.RingHashConfig', p, 1, max, 0)
    : 0;
  const choiceCount = least
    ? readInt(least, 'ChoiceCount', 'LoadBalancer.LeastRequestConfig', p, 2, 100, 0)
    : 0;
  const hashPolicies = readArray(
    lb,
    'HashPolicies',
    'LoadBalancer',
    p,
    (v, f) => readHashPolicy(v, f, p),
    64,
  );
  const hashBased = policy === 'ring_hash' || policy === 'maglev';
  if (hashPolicies.length > 0 && !hashBased)
    p.add(
      'LoadBalancer.HashPolicies',
      `only with a hash-based Policy ("ring_hash" or "maglev"), not ${JSON.stringify(policy ?? '')}`,
    );
  if (policy === undefined || policy === '') return undefined;
  return {
    policy,
    ...(ring
      ? {
          ringHash: {
            ...(minimumRingSize ? { minimumRingSize } : {}),
            ...(maximumRingSize ? { maximumRingSize } : {}),
          },
        }
      : {}),
    ...(least ? { leastRequest: choiceCount ? { choiceCount } : {} } : {}),
    ...(hashPolicies.length > 0 ? { hashPolicies } : {}),
  };
}

function readHashPolicy(value: unknown, field: string, p: Problems): HashPolicy | undefined {
  const obj = readObject(value, field, hashPolicyFields, p);
  if (!obj) return undefined;
  const kind = readEnum(obj, 'Field', field, p, ['', ...hashFields] as const, '');
  const fieldValue = readString(obj, 'FieldValue', field, p, '', { maxLength: 256 });
  const sourceIp = readBool(obj, 'SourceIP', field, p, false);
  const terminal = readBool(obj, 'Terminal', field, p, false);
  const cookie = readOptionalObject(obj, 'CookieConfig', field, ['Session', 'TTL', 'Path'], p);
  if (sourceIp && kind)
    p.add(
      at(field, 'SourceIP'),
      `cannot hash both the source address and a ${kind}; use two hash policies`,
    );
  if (sourceIp && fieldValue)
    p.add(at(field, 'FieldValue'), 'cannot be set with SourceIP (the source address is hashed)');
  if (kind && !fieldValue)
    p.add(at(field, 'FieldValue'), `required with Field ${JSON.stringify(kind)} (its name)`);
  if (fieldValue && !kind)
    p.add(at(field, 'Field'), `required with FieldValue (one of ${hashFields.join(', ')})`);
  if (!kind && !fieldValue && sourceIp === false)
    p.add(field, 'set Field and FieldValue, or SourceIP true (nothing to hash)');
  if (kind === 'header' && fieldValue) checkHeaderName(fieldValue, at(field, 'FieldValue'), p);
  if (cookie && kind !== 'cookie') p.add(at(field, 'CookieConfig'), 'only with Field "cookie"');
  const cookieConfig = cookie ? readCookieConfig(cookie, at(field, 'CookieConfig'), p) : undefined;
  if (
    kind === undefined ||
    fieldValue === undefined ||
    sourceIp === undefined ||
    terminal === undefined ||
    (cookie && !cookieConfig)
  )
    return undefined;
  return {
    field: kind,
    fieldValue,
    ...(cookieConfig && kind === 'cookie' ? { cookieConfig } : {}),
    sourceIp,
    terminal,
  };
}

function readCookieConfig(
  obj: JsonObject,
  field: string,
  p: Problems,
): HashPolicy['cookieConfig'] | undefined {
  const session = readBool(obj, 'Session', field, p, false);
  const path = readString(obj, 'Path', field, p, '', { maxLength: 1024 });
  const ttl = obj.TTL;
  let ttlMs: number | undefined = 0;
  if (ttl !== undefined && ttl !== null && ttl !== '' && ttl !== '0s') {
    const seconds = typeof ttl === 'string' ? parseDurationSeconds(ttl) : undefined;
    ttlMs =
      seconds === undefined || seconds > maxCookieTtlSeconds
        ? p.add(
            at(field, 'TTL'),
            `must be a duration up to 8784h such as "1h" or "30m" (got ${JSON.stringify(ttl)})`,
          )
        : Math.round(seconds * 1000);
  }
  if (session && ttlMs)
    p.add(at(field, 'TTL'), 'a session cookie has no TTL; remove TTL or set Session false');
  if (session === undefined || path === undefined || ttlMs === undefined) return undefined;
  return { session, ttlMs, path };
}
