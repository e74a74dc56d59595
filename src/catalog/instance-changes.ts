import { IsthmusError } from '../errors.js';
import {
  type HealthCheck,
  type HealthStatus,
  type ServiceInstance,
  instanceHealth,
} from './types.js';
import type { CatalogIndex, StoredInstance } from './catalog-index.js';
import type { CheckDraft } from './checks.js';
import { type Parsed, Problems } from './input.js';
import { ok } from '../result.js';
import type { InstanceDraft, Registration } from './registration.js';

/**
 * Pure planning of catalog writes against the current index: what to put and what to remove.
 * The catalog commits a plan in one Store transaction, then applies it to its index.
 */
export interface InstanceChanges {
  readonly upserts: readonly StoredInstance[];
  readonly removals: readonly ServiceInstance[];
}

/** Consul's range for automatically assigned sidecar ports. */
export const sidecarPortRange = { min: 21000, max: 21255 } as const;

export interface PlanContext {
  readonly index: CatalogIndex;
  readonly now: number;
  /** The store revision this write commits at: its ModifyIndex (and CreateIndex when new). */
  readonly revision: number;
}

/**
 * A registration replaces any instance with the same ID (Consul semantics), keeps the status of
 * its existing TTL checks unless `Status` is given (re-applying the same registration must not make
 * a healthy service flap), and removes a Connect sidecar the new registration no longer declares.
 */
export function planRegistration(reg: Registration, ctx: PlanContext): Parsed<InstanceChanges> {
  const p = new Problems();
  const previousSidecar = ctx.index.connectSidecarOf(reg.service.id);
  const drafts = reg.sidecar ? [reg.service, reg.sidecar.instance] : [reg.service];
  const replaced = new Set([
    ...drafts.map((d) => d.id),
    ...(previousSidecar ? [previousSidecar.id] : []),
  ]);
  checkCheckIds(
    drafts.flatMap((d) => d.checks),
    replaced,
    ctx.index,
    p,
  );
  const sidecarPort =
    reg.sidecar &&
    (reg.sidecar.port ?? freeSidecarPort(ctx.index, reg.sidecar.instance, previousSidecar, p));
  if (p.list.length > 0) return p.result<InstanceChanges>(undefined);
  const service = stamp(reg.service, ctx);
  const upserts: StoredInstance[] = [{ instance: service }];
  if (reg.sidecar && sidecarPort !== undefined) {
    const sidecar = withAliasStatus(
      stamp({ ...reg.sidecar.instance, port: sidecarPort }, ctx),
      service,
    );
    upserts.push({ instance: sidecar, sidecarFor: reg.service.id });
  }
  const removals = previousSidecar && !reg.sidecar ? [previousSidecar] : [];
  return ok({ upserts, removals });
}

/** Check IDs are unique across this server's catalog, as on one Consul agent. */
function checkCheckIds(
  checks: readonly CheckDraft[],
  replaced: ReadonlySet<string>,
  index: CatalogIndex,
  p: Problems,
): void {
  const seen = new Map<string, string>();
  for (const check of checks) {
    const owner = index.checkOwner(check.checkId);
    const first = seen.get(check.checkId);
    seen.set(check.checkId, check.field);
    if (first !== undefined && first !== check.field) {
      p.add(
        `${check.field}.CheckID`,
        `${JSON.stringify(check.checkId)} is already used by ${first}`,
      );
    } else if (owner && !replaced.has(owner.id)) {
      p.add(
        `${check.field}.CheckID`,
        `${JSON.stringify(check.checkId)} is already a check of service ${JSON.stringify(owner.id)}; check IDs must be unique`,
      );
    }
  }
}

/**
 * Ports the sidecar's own upstreams bind on its address: its public listener cannot have them
 * (Envoy refuses a second listener on an address).
 */
function upstreamPorts(sidecar: InstanceDraft): ReadonlySet<number> {
  return new Set(
    (sidecar.proxy?.upstreams ?? [])
      .filter((u) => u.localBindAddress === sidecar.address)
      .map((u) => u.localBindPort),
  );
}

/**
 * Keeps the port of the sidecar being replaced unless one of its upstreams now binds it; otherwise
 * the first port no other sidecar on the same address has and none of its upstreams binds. The
 * range is per address, as Consul's is per agent: a cluster of many hosts holds many times 256
 * sidecars, and the lookup costs the sidecars on that address, not the catalog.
 */
function freeSidecarPort(
  index: CatalogIndex,
  sidecar: InstanceDraft,
  previous: ServiceInstance | undefined,
  p: Problems,
): number | undefined {
  const { min, max } = sidecarPortRange;
  const taken = upstreamPorts(sidecar);
  const samePlace = previous?.address === sidecar.address;
  if (
    previous &&
    samePlace &&
    previous.port >= min &&
    previous.port <= max &&
    !taken.has(previous.port)
  )
    return previous.port;
  const used = index.sidecarPortsAt(sidecar.address);
  for (let port = min; port <= max; port++) if (!used.has(port) && !taken.has(port)) return port;
  return p.add(
    'Connect.SidecarService.Port',
    `no free port left in ${min}-${max} for a sidecar on ${sidecar.address}: set Connect.SidecarService.Port`,
  );
}

function stamp(draft: InstanceDraft, ctx: PlanContext): ServiceInstance {
  const existing = ctx.index.get(draft.id)?.instance;
  const checks = draft.checks.map((c) =>
    stampCheck(
      c,
      existing?.checks.find((e) => e.checkId === c.checkId),
      ctx.now,
    ),
  );
  return {
    ...draft,
    checks,
    createIndex: existing?.createIndex ?? ctx.revision,
    modifyIndex: ctx.revision,
  };
}

function stampCheck(
  draft: CheckDraft,
  existing: HealthCheck | undefined,
  now: number,
): HealthCheck {
  const { field: _field, statusExplicit, ...check } = draft;
  if (draft.ttlSeconds === undefined) return check;
  const expiresAt = now + draft.ttlSeconds * 1000;
  if (!existing || statusExplicit) return { ...check, expiresAt };
  return {
    ...check,
    status: existing.status,
    output: existing.output,
    expiresAt: Math.min(existing.expiresAt ?? expiresAt, expiresAt),
  };
}

/**
 * Sets the alias checks of `instance` that follow `target` to its health; same object when nothing
 * changes.
 */
function withAliasStatus(instance: ServiceInstance, target: ServiceInstance): ServiceInstance {
  const status = instanceHealth(target);
  const output =
    status === 'passing'
      ? 'All checks passing.'
      : `Aliased service ${JSON.stringify(target.id)} is ${status}`;
  let changed = false;
  const checks = instance.checks.map((c) => {
    if (c.aliasOf !== target.id || (c.status === status && c.output === output)) return c;
    changed = true;
    return { ...c, status, output };
  });
  return changed ? { ...instance, checks } : instance;
}

/** Removes `id` and the sidecar registered through its `Connect` block, like Consul's agent. */
export function planDeregistration(id: string, index: CatalogIndex): InstanceChanges | undefined {
  const instance = index.get(id)?.instance;
  if (!instance) return undefined;
  const sidecar = index.connectSidecarOf(id);
  return { upserts: [], removals: sidecar ? [instance, sidecar] : [instance] };
}

export interface CheckUpdate {
  /** The check's instance, and its Connect sidecar when the sidecar's alias check changed. */
  readonly upserts: readonly StoredInstance[];
  /** False when only the expiry moved (a heartbeat): no ModifyIndex bump, no event. */
  readonly changed: boolean;
}

/** A TTL refresh: new status and output, expiry pushed out by the TTL. */
export function planCheckUpdate(
  checkId: string,
  status: HealthStatus,
  output: string,
  ctx: PlanContext,
): CheckUpdate | undefined {
  const aliasOf = ctx.index.checkOwner(checkId)?.checks.find((c) => c.checkId === checkId)?.aliasOf;
  if (aliasOf !== undefined) {
    throw new IsthmusError(
      'failed_precondition',
      `check ${JSON.stringify(checkId)} is an alias check: its status follows service ${JSON.stringify(aliasOf)}`,
    );
  }
  return updateCheck(checkId, ctx, (check) => ({
    ...check,
    status,
    output,
    expiresAt: check.ttlSeconds === undefined ? undefined : ctx.now + check.ttlSeconds * 1000,
  }));
}

/**
 * A TTL that ran out turns the check critical ("TTL expired", Consul's output); undefined if not
 * due.
 */
export function planExpiry(checkId: string, ctx: PlanContext): CheckUpdate | undefined {
  const owner = ctx.index.checkOwner(checkId);
  const check = owner?.checks.find((c) => c.checkId === checkId);
  if (
    !check ||
    check.status === 'critical' ||
    check.expiresAt === undefined ||
    check.expiresAt > ctx.now
  )
    return undefined;
  return updateCheck(checkId, ctx, (c) => ({ ...c, status: 'critical', output: 'TTL expired' }));
}

function updateCheck(
  checkId: string,
  ctx: PlanContext,
  update: (check: HealthCheck) => HealthCheck,
): CheckUpdate | undefined {
  const owner = ctx.index.checkOwner(checkId);
  const stored = owner && ctx.index.get(owner.id);
  if (!owner || !stored) return undefined;
  let changed = false;
  const checks = owner.checks.map((c) => {
    if (c.checkId !== checkId) return c;
    const next = update(c);
    changed = next.status !== c.status || next.output !== c.output;
    return next;
  });
  const instance: ServiceInstance = {
    ...owner,
    checks,
    modifyIndex: changed ? ctx.revision : owner.modifyIndex,
  };
  const upserts: StoredInstance[] = [{ ...stored, instance }];
  const sidecar = ctx.index.connectSidecarOf(owner.id);
  const aliased = sidecar && withAliasStatus(sidecar, instance);
  if (sidecar && aliased && aliased !== sidecar) {
    upserts.push({ instance: { ...aliased, modifyIndex: ctx.revision }, sidecarFor: owner.id });
  }
  return { upserts, changed };
}
