/**
 * `isthmus demo` with real Envoy (`--envoy`): the same two peered clusters, but every proxy is an
 * Envoy process fed by its cluster's server, the apps are real HTTP servers, and the tour ends
 * with a real request from B's web app to A's api through web's sidecar, B's mesh gateway, A's
 * mesh gateway and api's sidecar. What it prints comes from the apps and the Envoys themselves:
 * api's answer, `x-forwarded-client-cert`, and Envoy's config dump and counters.
 */
import { meshGatewaySpiffeId, serviceSpiffeId, upstreamListenerName } from '../mesh/names.js';
import type { DemoCluster } from './demo-cluster.js';
import type { DemoRun } from './demo-run.js';
import { waitEnvoyHealthy } from './envoy-health.js';
import {
  type EnvoyMesh,
  type ProxyId,
  proxies,
  registerEnvoyMesh,
  startEnvoys,
} from './envoy-mesh.js';
import type { DemoEnvoy } from './envoy-process.js';
import { callThroughMesh, type MeshCall } from './envoy-request.js';
import { type HeldUpstream, heldUpstream } from './envoy-view.js';
import { StepFailure, step } from './step.js';
import { exportApi, peerClusters, startClusters, until } from './tour-steps.js';
import { plural, type TourResult, where } from './tour.js';
import { parseXfcc, type XfccElement } from './xfcc.js';

export interface EnvoyTourResult extends TourResult {
  readonly mesh: EnvoyMesh;
  readonly envoys: ReadonlyMap<ProxyId, DemoEnvoy>;
}

/** Starting five Envoys and waiting for LIVE may take a while on a busy machine. */
const envoyStepTimeoutMs = 90_000;
const envoyLiveTimeoutMs = 60_000;
const requestTimeoutMs = 20_000;

export async function runEnvoyTour(
  run: DemoRun,
  envoy: { path: string; version: string },
  out: (line: string) => void,
): Promise<EnvoyTourResult> {
  const { a, b } = await step('start the clusters', () => startClusters(run));
  out(`1 ✓ started cluster A (dc-a): ${where(a)}`);
  out(`      and cluster B (dc-b): ${where(b)}`);

  const mesh = await step('register the services', () => registerEnvoyMesh(run, a, b));
  const p = mesh.ports;
  out(
    `2 ✓ registered in A: api (HTTP app 127.0.0.1:${mesh.api.port}) with a sidecar (public listener 127.0.0.1:${p.apiSidecar}) and mesh gateway gw-a (LAN+WAN 127.0.0.1:${p.gatewayA})`,
  );
  out(
    `      in B: web (app 127.0.0.1:${mesh.web.port}) with a sidecar (upstream api from peer cluster-a on 127.0.0.1:${p.upstream}, via B's mesh gateway) and mesh gateway gw-b (127.0.0.1:${p.gatewayB})`,
  );
  out(
    `      and api-b (app 127.0.0.1:${mesh.apiB.port}, sidecar 127.0.0.1:${p.apiBSidecar}), which web reaches as upstream api on 127.0.0.1:${p.localUpstream}`,
  );

  await step('peer the clusters', () => peerClusters(a, b));
  out('3 ✓ peered: A→cluster-b ACTIVE, B→cluster-a ACTIVE');

  const imported = await step('export api to B', () => exportApi(a, b));
  out(
    `4 ✓ A exports api to cluster-b; B imported api (${plural(imported, 'instance')} from peer cluster-a)`,
  );

  const envoys = await step(
    `start Envoy ${envoy.version} for every proxy`,
    () => startLiveEnvoys(run, envoy.path, a, b),
    envoyStepTimeoutMs,
  );
  out(
    `5 ✓ ${envoys.size} Envoy ${envoy.version} processes (${envoy.path}) LIVE, every update from isthmus accepted (none rejected or warming):`,
  );
  const width = Math.max(...proxies.map((x) => x.id.length));
  for (const x of proxies)
    out(`      ${x.id.padEnd(width)}  cluster ${x.cluster}  admin ${envoys.get(x.id)!.adminUrl}`);

  const ids = await identities(a, b);
  const upstream = await step("read B's web sidecar Envoy", () =>
    readHeldUpstream(envoys.get('web-sidecar-proxy')!, ids.tdA, mesh),
  );
  out(
    `6 ✓ web-sidecar-proxy's Envoy holds, for ${upstreamListenerName('api', '127.0.0.1', p.upstream, 'cluster-a')}:`,
  );
  for (const line of heldUpstreamLines(upstream)) out(line);

  const requestStep = "request from B's web to A's api through both gateways";
  const call = await step(
    requestStep,
    () => callThroughMesh(mesh.web.port, [...envoys.values()], requestTimeoutMs),
    requestTimeoutMs + 5_000,
  );
  const tls = await step(requestStep, () =>
    upstreamTls(envoys.get('web-sidecar-proxy')!, upstream.cluster),
  );
  for (const line of describeCall(requestStep, call, mesh, upstream, ids, tls)) out(line);
  return { a, b, mesh, envoys };
}

/** Every proxy's Envoy started and LIVE with nothing rejected or warming. */
async function startLiveEnvoys(
  run: DemoRun,
  binary: string,
  a: DemoCluster,
  b: DemoCluster,
): Promise<Map<ProxyId, DemoEnvoy>> {
  const started = await startEnvoys(run, binary, { A: a, B: b });
  await Promise.all([...started.values()].map((e) => waitEnvoyHealthy(e, envoyLiveTimeoutMs)));
  return started;
}

function heldUpstreamLines(upstream: HeldUpstream): string[] {
  return [
    `      cluster    ${upstream.cluster}, SNI ${upstream.sni}`,
    ...upstream.sanMatchers.map(
      (m, i) =>
        `${i === 0 ? '                 SAN matchers ' : '                              '}${m}`,
    ),
    `      endpoints  ${upstream.hosts.map((h) => `${h.address} ${h.healthy ? 'healthy' : 'unhealthy'}`).join(', ')}  (B's mesh gateway gw-b: mesh gateway mode local)`,
  ];
}

interface Identities {
  readonly tdA: string;
  readonly web: string;
  readonly api: string;
  readonly gatewayA: string;
}

async function identities(a: DemoCluster, b: DemoCluster): Promise<Identities> {
  const td = async (c: DemoCluster) =>
    (await c.api.get<{ TrustDomain: string }>('/v1/connect/ca/roots')).TrustDomain;
  const [tdA, tdB] = await Promise.all([td(a), td(b)]);
  return {
    tdA,
    web: serviceSpiffeId(tdB, 'dc-b', { name: 'web' }),
    api: serviceSpiffeId(tdA, 'dc-a', { name: 'api' }),
    gatewayA: meshGatewaySpiffeId(tdA, 'dc-a'),
  };
}

/** B's web sidecar holds the peered api cluster with B's gateway as its (healthy) endpoint. */
function readHeldUpstream(web: DemoEnvoy, tdA: string, mesh: EnvoyMesh): Promise<HeldUpstream> {
  const cluster = `api.default.cluster-a.external.${tdA}`;
  const gatewayB = `127.0.0.1:${mesh.ports.gatewayB}`;
  return until(
    `cluster ${cluster} in web-sidecar-proxy's Envoy with endpoint ${gatewayB} healthy`,
    async () => {
      const held = await heldUpstream(web, cluster);
      return held?.hosts.some((h) => h.address === gatewayB && h.healthy) ? held : undefined;
    },
  );
}

type Fail = (reason: string) => never;

/** The tour's lines for the request, after checking that it went where the mesh says it goes. */
function describeCall(
  stepName: string,
  call: MeshCall,
  mesh: EnvoyMesh,
  upstream: HeldUpstream,
  ids: Identities,
  tls: UpstreamTls,
): string[] {
  const fail: Fail = (reason) => {
    throw new StepFailure(stepName, reason);
  };
  const way = wayLines(call, mesh, fail);
  const hops = parseXfcc(call.answer.headers['x-forwarded-client-cert'] ?? '');
  const verified = checkIdentities(hops, upstream, ids, fail);
  if (tls.handshakes === 0 || tls.failed > 0)
    fail(
      `web's sidecar cluster ${upstream.cluster}: ${tls.handshakes} TLS handshakes, ${tls.failed} failed verifications`,
    );
  const { answer } = call;
  const headerNames = Object.keys(answer.headers).map((h) =>
    h === 'x-forwarded-client-cert' ? `${h} (${plural(hops.length, 'element')})` : h,
  );
  return [
    `7 ✓ GET ${call.url} (B's web app), which called api at http://127.0.0.1:${mesh.ports.upstream}/hello (its sidecar's upstream listener): HTTP ${call.web.status} from api in ${answer.datacenter}${call.attempts > 1 ? ` (attempt ${call.attempts})` : ''}`,
    `      api answered ${JSON.stringify({ app: answer.app, datacenter: answer.datacenter, method: answer.method, path: answer.path })}, having seen headers ${headerNames.join(', ')}`,
    "      the way, from each Envoy's counters for this request:",
    ...way,
    '      who proved what to whom, from x-forwarded-client-cert (one element per mTLS session the request crossed):',
    ...hops.map(
      (h, i) => `        ${i + 1}. server ${h.by ?? '?'} accepted client ${h.uri ?? '?'}`,
    ),
    `      web's sidecar checked that ${verified} is one of its SAN matchers (cluster ${upstream.cluster}: ${plural(tls.handshakes, 'TLS handshake')}, ${tls.failed} failed verifications)`,
    `      api's app sees the caller: ${ids.web}`,
  ];
}

/** Each proxy on the way sent bytes of the request to the next one; one line per proxy. */
function wayLines(call: MeshCall, mesh: EnvoyMesh, fail: Fail): string[] {
  const p = mesh.ports;
  const next: [ProxyId, string, string][] = [
    ['web-sidecar-proxy', `127.0.0.1:${p.gatewayB}`, 'gw-b'],
    ['gw-b', `127.0.0.1:${p.gatewayA}`, 'gw-a'],
    ['gw-a', `127.0.0.1:${p.apiSidecar}`, "api's sidecar"],
    ['api-sidecar-proxy', `127.0.0.1:${mesh.api.port}`, "api's app"],
  ];
  return next.map(([envoy, to, name]) => {
    const sent = call.crossings.get(envoy) ?? [];
    const c =
      sent.find((x) => x.hosts.includes(to)) ??
      fail(
        `${envoy}'s Envoy sent nothing of the request to ${name} (${to}); it sent to: ${JSON.stringify(sent)}`,
      );
    return `        ${envoy.padEnd(17)} cluster ${c.cluster} → ${to} (${name}), ${c.bytesOut} bytes out, ${c.bytesIn} in`;
  });
}

/**
 * The first XFCC element is the session web's sidecar opened: its client is web, its server an
 * identity web's sidecar accepts (a SAN matcher); the last one ends at api's sidecar. Returns
 * with the server identity web's sidecar verified.
 */
function checkIdentities(
  hops: readonly XfccElement[],
  upstream: HeldUpstream,
  ids: Identities,
  fail: Fail,
): string {
  const first = hops[0];
  if (first?.uri !== ids.web)
    fail(
      `api's app saw caller ${first?.uri ?? 'none'} in x-forwarded-client-cert, expected ${ids.web} (header: ${plural(hops.length, 'element')})`,
    );
  if (!first?.by || !upstream.sanMatchers.includes(first.by))
    fail(
      `web's sidecar was answered by ${first?.by ?? 'an unknown identity'}, which is none of its SAN matchers`,
    );
  if (hops.at(-1)?.by !== ids.api)
    fail(
      `the last mTLS session ended at ${hops.at(-1)?.by ?? 'an unknown identity'}, not api's sidecar (${ids.api})`,
    );
  return first!.by!;
}

interface UpstreamTls {
  readonly handshakes: number;
  /**
   * Certificates refused: no certificate, a chain not from the peer's CA, or no SAN matcher
   * matched.
   */
  readonly failed: number;
}

/** Envoy's TLS counters of an upstream cluster (`cluster.<name>.ssl.*`). */
async function upstreamTls(envoy: DemoEnvoy, cluster: string): Promise<UpstreamTls> {
  const stats = await envoy.stats('ssl\\.(handshake|fail_verify)');
  const at = (name: string) => stats.get(`cluster.${cluster}.ssl.${name}`) ?? 0;
  return {
    handshakes: at('handshake'),
    failed:
      at('fail_verify_no_cert') +
      at('fail_verify_error') +
      at('fail_verify_san') +
      at('fail_verify_cert_hash'),
  };
}
