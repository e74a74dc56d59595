import type { HealthCheck, HealthStatus } from './types.js';
import {
  type JsonObject,
  type Problems,
  at,
  idRule,
  readEnum,
  readObject,
  readString,
} from './input.js';

/**
 * Health checks. isthmus runs no probes itself: every check is a TTL check that the service (or
 * its agent) refreshes through `PUT /v1/agent/check/{pass,warn,fail}/:checkId`, and that turns
 * critical when not refreshed within its TTL, as in Consul.
 */
export const healthStatuses: readonly HealthStatus[] = ['passing', 'warning', 'critical'];

/** A check as registered, before the catalog stamps its expiry. */
export type CheckDraft = Omit<HealthCheck, 'expiresAt'> & {
  /** JSON path of the check in the registration, for errors found against the catalog. */
  readonly field: string;
  /** Whether `Status` was given (otherwise a re-registration keeps the check's current status). */
  readonly statusExplicit: boolean;
};

const checkFields = ['CheckID', 'Name', 'Status', 'TTL', 'Notes'] as const;
/**
 * Consul check kinds isthmus does not run; named so the error says so rather than "unknown field".
 */
const unsupportedCheckFields = [
  'HTTP',
  'TCP',
  'GRPC',
  'UDP',
  'H2PING',
  'Args',
  'ScriptArgs',
  'DockerContainerID',
  'AliasService',
  'AliasNode',
  'OSService',
  'Interval',
];

const minTtlSeconds = 0.1;
const maxTtlSeconds = 24 * 3600;
const durationPart = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;
const durationWhole = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h))+$/;
const unitSeconds: Readonly<Record<string, number>> = { ms: 0.001, s: 1, m: 60, h: 3600 };

/** A Go-style duration ("10s", "1m30s", "500ms") in seconds, or undefined when malformed. */
export function parseDurationSeconds(text: string): number | undefined {
  if (!durationWhole.test(text)) return undefined;
  let total = 0;
  for (const m of text.matchAll(durationPart)) total += Number(m[1]) * unitSeconds[m[2]!]!;
  return total;
}

/**
 * `Check` and `Checks` of a registration. Default IDs follow Consul: `service:<id>`, or
 * `service:<id>:<n>` (n from 1) when the registration has more than one check.
 */
export function parseChecks(
  obj: JsonObject,
  base: string,
  service: { id: string; name: string },
  p: Problems,
): CheckDraft[] {
  const raw: { value: unknown; field: string }[] = [];
  if (obj.Check !== undefined && obj.Check !== null)
    raw.push({ value: obj.Check, field: at(base, 'Check') });
  const list = obj.Checks;
  if (Array.isArray(list))
    list.forEach((value: unknown, i) => {
      raw.push({ value, field: at(at(base, 'Checks'), i) });
    });
  else if (list !== undefined && list !== null)
    p.add(at(base, 'Checks'), 'must be a JSON array of checks');
  const parsed = raw.map(({ value, field }, i) => {
    const defaultId = raw.length > 1 ? `service:${service.id}:${i + 1}` : `service:${service.id}`;
    return parseCheck(value, field, defaultId, service, p);
  });
  const seen = new Map<string, string>();
  parsed.forEach((check, i) => {
    if (check === undefined) return;
    const field = raw[i]!.field;
    if (seen.has(check.checkId))
      p.add(
        at(field, 'CheckID'),
        `${JSON.stringify(check.checkId)} is already used by ${seen.get(check.checkId)}`,
      );
    else seen.set(check.checkId, field);
  });
  return parsed.filter((c): c is CheckDraft => c !== undefined);
}

function parseCheck(
  value: unknown,
  field: string,
  defaultId: string,
  service: { id: string; name: string },
  p: Problems,
): CheckDraft | undefined {
  if (typeof value === 'object' && value !== null) {
    for (const key of unsupportedCheckFields) {
      if (key in value)
        p.add(
          at(field, key),
          'not supported: isthmus runs TTL checks only (set TTL and refresh it via /v1/agent/check/pass/:checkId)',
        );
    }
  }
  const obj = readObject(value, field, [...checkFields, ...unsupportedCheckFields], p);
  if (!obj) return undefined;
  const checkId = readString(obj, 'CheckID', field, p, defaultId, idRule);
  const name = readString(obj, 'Name', field, p, `Service '${service.name}' check`, {
    maxLength: 256,
  });
  const status = readEnum(obj, 'Status', field, p, healthStatuses, 'critical');
  readString(obj, 'Notes', field, p, '', { maxLength: 1024 });
  const ttlSeconds = readTtl(obj, field, p);
  if (
    checkId === undefined ||
    name === undefined ||
    status === undefined ||
    ttlSeconds === undefined
  )
    return undefined;
  const statusExplicit = obj.Status !== undefined && obj.Status !== null;
  return {
    checkId,
    name,
    serviceId: service.id,
    status,
    output: '',
    ttlSeconds,
    field,
    statusExplicit,
  };
}

function readTtl(obj: JsonObject, field: string, p: Problems): number | undefined {
  const allowed = `a duration like "10s", "1m" or "1m30s", from 100ms to 24h`;
  const text = readString(obj, 'TTL', field, p, undefined, { patternText: allowed });
  if (text === undefined) return undefined;
  const seconds = parseDurationSeconds(text);
  if (seconds === undefined || seconds < minTtlSeconds || seconds > maxTtlSeconds) {
    return p.add(at(field, 'TTL'), `${JSON.stringify(text)} is not allowed: ${allowed}`);
  }
  return seconds;
}

/**
 * Consul gives a `Connect` sidecar registered without checks an alias of its service (and a TCP
 * check isthmus cannot run): `service:<sidecar-id>:2`, named as in Consul.
 */
export function aliasCheckDraft(
  sidecar: { id: string },
  service: { id: string; name: string },
  field: string,
): CheckDraft {
  const checkId = `service:${sidecar.id}:2`;
  return {
    checkId,
    name: `Connect Sidecar Aliasing ${service.name}`,
    serviceId: sidecar.id,
    status: 'critical',
    output: '',
    aliasOf: service.id,
    field,
    statusExplicit: false,
  };
}

/** Time as the catalog sees it; tests inject a manual clock. */
export interface Clock {
  now(): number;
  setTimer(fn: () => void, ms: number): () => void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(fn, ms) {
    // Node caps timers at 2^31-1 ms; TTLs are at most 24 h, far below.
    const t = setTimeout(fn, Math.max(0, ms));
    t.unref();
    return () => clearTimeout(t);
  },
};

/** One timer per TTL check that is not critical yet; firing calls `onExpire(checkId)`. */
export class TtlTimers {
  private readonly timers = new Map<string, () => void>();

  constructor(
    private readonly clock: Clock,
    private readonly onExpire: (checkId: string) => void,
  ) {}

  /** (Re)arms or disarms the timers of `checks` to match their state. */
  sync(checks: readonly HealthCheck[]): void {
    for (const check of checks) {
      this.disarm(check.checkId);
      if (check.expiresAt === undefined || check.status === 'critical') continue;
      this.arm(check.checkId, check.expiresAt);
    }
  }

  /**
   * Node's timers may fire up to a millisecond before `Date.now()` reaches the deadline (they run
   * on a monotonic clock and round): a timer that fires early arms again for what is left, so
   * `onExpire` only ever sees a check that is due.
   */
  private arm(checkId: string, expiresAt: number): void {
    const cancel = this.clock.setTimer(() => {
      this.timers.delete(checkId);
      if (this.clock.now() < expiresAt) this.arm(checkId, expiresAt);
      else this.onExpire(checkId);
    }, expiresAt - this.clock.now());
    this.timers.set(checkId, cancel);
  }

  /** Fires `onExpire(checkId)` again after `delayMs` (an expiry the store could not write). */
  retryLater(checkId: string, delayMs: number): void {
    this.disarm(checkId);
    this.arm(checkId, this.clock.now() + delayMs);
  }

  disarmAll(checks: readonly HealthCheck[]): void {
    for (const check of checks) this.disarm(check.checkId);
  }

  clear(): void {
    for (const cancel of this.timers.values()) cancel();
    this.timers.clear();
  }

  private disarm(checkId: string): void {
    this.timers.get(checkId)?.();
    this.timers.delete(checkId);
  }
}
