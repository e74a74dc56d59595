/**
 * CA rotation → every Envoy serving the new leaf. A rotation (POST /v1/connect/ca/rotate) runs
 * three phases, each `phaseMs` after the previous one (src/ca/built-in-ca.ts): both roots trusted,
 * then the new root signs and every leaf is re-issued, then the old root is retired. Each phase is
 * timed from when the server begins it until every Envoy holds its result:
 *
 * - trust: the `roots` secret (the validation context) holds the new root;
 * - leaf: the leaf secret is signed by the new root and `/certs` shows that certificate in every
 *   TLS context (what the listeners and clusters present from now on);
 * - retire: the `roots` secret no longer holds the old root.
 *
 * Envoy's own apply time is the secret's `last_updated` in `/config_dump`.
 */
import { X509Certificate } from 'node:crypto';
import type { EnvoyProcess } from '../../test/envoy/harness.js';
import { waitFor } from '../../test/helpers/wait.js';
import { acceptedHints, adminGet } from './admin.js';
import { tailMs } from './endpoint-rounds.js';
import { type CpuSpent, cpuWindow } from './fleet.js';
import { pollFleet, sweepGapMs } from './poll.js';
import type { ServerUnderTest } from './server-process.js';

export type Phase = 'trust' | 'leaf' | 'retire';
export const phases: readonly Phase[] = ['trust', 'leaf', 'retire'];

export interface PhaseResult {
  readonly rotation: number;
  readonly phase: Phase;
  /**
   * Per Envoy, from the start of the phase (ms): the secret's last_updated, and the poll that first
   * showed it.
   */
  readonly appliedMs: readonly number[];
  readonly visibleMs: readonly number[];
  /** Admin requests the poller made in the phase. */
  readonly requests: number;
  /** xDS responses the server sent in the phase (isthmus_xds_pushes_total). */
  readonly responses: number;
  /** CPU from the start of the phase until every Envoy showed it, plus `tailMs`. */
  readonly cpu: CpuSpent;
  /**
   * When the server logged that it had taken the step (committed it; for `leaf`, also re-issued
   * every leaf), from the start of the phase (ms).
   */
  readonly serverStepMs: number;
  readonly missing: readonly string[];
}

export interface RotationOptions {
  readonly rotations: number;
  readonly phaseMs: number;
  readonly boundMs: number;
  readonly pollConcurrency: number;
}

interface HeldSecrets {
  readonly leafPem: string;
  readonly leafUpdated: number;
  /** The base64 bodies of the trusted roots. */
  readonly roots: ReadonlySet<string>;
  readonly rootsUpdated: number;
}

type DumpedSecret = {
  last_updated?: string;
  secret: {
    tls_certificate?: { certificate_chain?: { inline_string?: string; inline_bytes?: string } };
    validation_context?: { trusted_ca?: { inline_string?: string; inline_bytes?: string } };
  };
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pemText = (source: { inline_string?: string; inline_bytes?: string } | undefined) =>
  source?.inline_string ?? Buffer.from(source?.inline_bytes ?? '', 'base64').toString('utf8');

/** The base64 bodies of the PEM certificates in `text`, whitespace removed. */
function pemBodies(text: string): string[] {
  return [...text.matchAll(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g)].map(
    (m) => m[1]!.replace(/\s+/g, ''),
  );
}

async function heldSecrets(envoy: EnvoyProcess): Promise<HeldSecrets> {
  const dump = JSON.parse(
    await adminGet(envoy, '/config_dump?resource=dynamic_active_secrets'),
  ) as { configs: DumpedSecret[] };
  let held: Partial<HeldSecrets> = {};
  for (const c of dump.configs) {
    const updated = Date.parse(c.last_updated ?? '');
    if (c.secret.tls_certificate)
      held = {
        ...held,
        leafPem: pemText(c.secret.tls_certificate.certificate_chain),
        leafUpdated: updated,
      };
    if (c.secret.validation_context)
      held = {
        ...held,
        roots: new Set(pemBodies(pemText(c.secret.validation_context.trusted_ca))),
        rootsUpdated: updated,
      };
  }
  if (held.leafPem === undefined || held.roots === undefined)
    throw new Error(`${envoy.name} holds no leaf or no roots secret`);
  return held as HeldSecrets;
}

const normalSerial = (hex: string) => hex.toLowerCase().replace(/^0+/, '');

/**
 * True when every TLS context of the Envoy (`/certs`) presents the certificate with this serial.
 */
async function presents(envoy: EnvoyProcess, serial: string): Promise<boolean> {
  const certs = JSON.parse(await adminGet(envoy, '/certs')) as {
    certificates: { cert_chain?: { serial_number: string }[] }[];
  };
  const chains = certs.certificates.flatMap((c) =>
    c.cert_chain?.[0] ? [normalSerial(c.cert_chain[0].serial_number)] : [],
  );
  return chains.length > 0 && chains.every((s) => s === serial);
}

interface Root {
  readonly id: string;
  /** The certificate's base64 body. */
  readonly body: string;
}

async function trustedRoots(server: ServerUnderTest): Promise<Root[]> {
  const res = await server.node.api<{ Roots: { ID: string; RootCert: string }[] }>(
    'GET',
    '/v1/connect/ca/roots',
  );
  return res.body.Roots.map((r) => ({ id: r.ID, body: pemBodies(r.RootCert)[0]! }));
}

/** The server's log message of each step (src/ca/built-in-ca.ts). */
const stepMessages: Record<Phase, string> = {
  trust: 'CA rotation started',
  leaf: 'every leaf was re-issued',
  retire: 'the old root is retired',
};

/** When the server logged the phase's step, at or after `after` (wall-clock ms). */
function stepLoggedAt(server: ServerUnderTest, phase: Phase, after: number): number {
  for (const line of server.node.proc.stdoutLines) {
    if (!line.includes(stepMessages[phase])) continue;
    const at = Date.parse((JSON.parse(line) as { time: string }).time);
    if (at >= after) return at;
  }
  return NaN;
}

type PhaseCheck = (held: HeldSecrets, envoy: EnvoyProcess) => Promise<number | undefined>;

/** Per phase: when the Envoy holds what the phase brings, the `last_updated` of that secret. */
function phaseChecks(oldRoot: Root, newRoot: Root): Record<Phase, PhaseCheck> {
  const newRootCert = new X509Certificate(
    `-----BEGIN CERTIFICATE-----\n${newRoot.body}\n-----END CERTIFICATE-----`,
  );
  const leafSerial = new Map<string, string | undefined>(); // leaf PEM → its serial when the new root signed it
  const signedByNew = (pem: string): string | undefined => {
    if (!leafSerial.has(pem)) {
      const leaf = new X509Certificate(pem);
      leafSerial.set(
        pem,
        leaf.verify(newRootCert.publicKey) ? normalSerial(leaf.serialNumber) : undefined,
      );
    }
    return leafSerial.get(pem);
  };
  return {
    trust: async (held) => (held.roots.has(newRoot.body) ? held.rootsUpdated : undefined),
    leaf: async (held, envoy) => {
      const serial = signedByNew(held.leafPem);
      return serial !== undefined && (await presents(envoy, serial)) ? held.leafUpdated : undefined;
    },
    retire: async (held) => (held.roots.has(oldRoot.body) ? undefined : held.rootsUpdated),
  };
}

/**
 * Starts a rotation once the previous one is over (one root trusted); returns both roots and the
 * start.
 */
async function startRotation(
  server: ServerUnderTest,
  opts: RotationOptions,
): Promise<{ oldRoot: Root; newRoot: Root; start: number }> {
  const before = await waitFor(
    async () => {
      const roots = await trustedRoots(server);
      return roots.length === 1 && roots;
    },
    { timeoutMs: opts.phaseMs + opts.boundMs, what: 'the previous CA rotation to finish' },
  );
  const oldRoot = before[0]!;
  const start = Date.now();
  const res = await server.node.api('POST', '/v1/connect/ca/rotate');
  if (res.status !== 200)
    throw new Error(`POST /v1/connect/ca/rotate → ${res.status} ${JSON.stringify(res.body)}`);
  const newRoot = (await trustedRoots(server)).find((r) => r.id !== oldRoot.id)!;
  return { oldRoot, newRoot, start };
}

/** Polls the fleet through one phase that starts at `phaseStart` (wall-clock ms). */
async function runPhase(
  server: ServerUnderTest,
  envoys: readonly EnvoyProcess[],
  phase: Phase,
  check: PhaseCheck,
  phaseStart: number,
  opts: RotationOptions,
) {
  // Reading the fleet's CPU takes a moment: the window opens shortly before the phase starts.
  await sleep(phaseStart - 100 - Date.now());
  const pushes0 = await server.metric('isthmus_xds_pushes_total');
  const cpuSpent = await cpuWindow(server, envoys);
  await sleep(phaseStart - Date.now());
  const applied = new Array<number>(envoys.length).fill(NaN);
  const poll = await pollFleet(
    envoys.length,
    async (i) => {
      const at = await check(await heldSecrets(envoys[i]!), envoys[i]!);
      if (at !== undefined) applied[i] = at;
      return at !== undefined;
    },
    // Trust and leaf must be in place before the next phase starts: a leaf of the new root
    // presented to a proxy that does not trust it yet, or one of the old root after it is retired,
    // fails mTLS.
    {
      concurrency: opts.pollConcurrency,
      deadline: phaseStart + (phase === 'retire' ? opts.boundMs : opts.phaseMs),
      sweepGapMs: sweepGapMs(envoys.length),
      hints: acceptedHints(envoys, 'Secret'),
    },
  );
  await sleep(tailMs);
  const cpu = await cpuSpent();
  return {
    phase,
    appliedMs: applied.map((t) => t - phaseStart),
    visibleMs: poll.seenAt.map((t) => t - phaseStart),
    requests: poll.requests,
    responses: (await server.metric('isthmus_xds_pushes_total')) - pushes0,
    cpu,
    serverStepMs: stepLoggedAt(server, phase, phaseStart) - phaseStart,
    missing: poll.missing.map((i) => envoys[i]!.name),
  };
}

export async function rotationRounds(
  server: ServerUnderTest,
  envoys: readonly EnvoyProcess[],
  opts: RotationOptions,
): Promise<PhaseResult[]> {
  const out: PhaseResult[] = [];
  for (let rotation = 1; rotation <= opts.rotations; rotation++) {
    const { oldRoot, newRoot, start } = await startRotation(server, opts);
    const checks = phaseChecks(oldRoot, newRoot);
    for (const [k, phase] of phases.entries()) {
      out.push({
        rotation,
        ...(await runPhase(server, envoys, phase, checks[phase], start + k * opts.phaseMs, opts)),
      });
    }
  }
  return out;
}
