/**
 * `isthmus demo`'s guided tour (issue 6): two clusters on loopback, a service with a sidecar and a
 * mesh gateway in each, peered, `api` exported from A to B; then what B's sidecar received for the
 * peered upstream and a real mTLS handshake with exactly that material, through a stand-in for A's
 * mesh gateway that routes by SNI the way A's gateway config says. Every step has a deadline; a
 * step that fails throws a `StepFailure` naming it.
 */
import { serviceSpiffeId } from '../mesh/names.js';
import { TypeUrl } from '../xds/types.js';
import type { DemoCluster } from './demo-cluster.js';
import type { DemoRun } from './demo-run.js';
import { StepFailure, step } from './step.js';
import {
  exportApi,
  handshakeThroughGateway,
  peerClusters,
  readUpstream,
  registerServices,
  startClusters,
  upstreamBindPort,
} from './tour-steps.js';
import { formatUpstreamSummary } from './upstream-summary.js';

export interface TourResult {
  readonly a: DemoCluster;
  readonly b: DemoCluster;
}

export const where = (c: DemoCluster) =>
  `http ${c.httpAddr}, xDS ${c.xdsAddr}, peering ${c.peeringAddr}`;
export const plural = (n: number, what: string) => `${n} ${n === 1 ? what : `${what}s`}`;

export async function runTour(run: DemoRun, out: (line: string) => void): Promise<TourResult> {
  const { a, b } = await step('start the clusters', () => startClusters(run));
  out(`1 ✓ started cluster A (dc-a): ${where(a)}`);
  out(`      and cluster B (dc-b): ${where(b)}`);

  const mesh = await step('register the services', () => registerServices(run, a, b));
  out(
    `2 ✓ registered in A: api with a sidecar (public listener 127.0.0.1:${mesh.apiSlot.port}) and mesh gateway gw-a (LAN+WAN 127.0.0.1:${mesh.gatewayA.address.port})`,
  );
  out(
    `      in B: web with a sidecar (upstream api from peer cluster-a on 127.0.0.1:${upstreamBindPort}) and mesh gateway gw-b (127.0.0.1:${mesh.gatewayB.address.port})`,
  );

  await step('peer the clusters', () => peerClusters(a, b));
  out('3 ✓ peered: A→cluster-b ACTIVE, B→cluster-a ACTIVE');

  const imported = await step('export api to B', () => exportApi(a, b));
  out(
    `4 ✓ A exports api to cluster-b; B imported api (${plural(imported, 'instance')} from peer cluster-a)`,
  );

  const upstream = await step("read B's web sidecar config", () => readUpstream(a, b, mesh));
  const held = (['cluster', 'listener', 'endpoint', 'secret'] as const).map((t) =>
    plural(upstream.webB.names(TypeUrl[t]).length, t),
  );
  out(`5 ✓ B's web sidecar (web-sidecar-proxy) holds ${held.join(', ')}; for api?peer=cluster-a:`);
  for (const line of formatUpstreamSummary(upstream.summary)) out(`      ${line}`);

  const handshakeStep = "mTLS handshake through A's gateway";
  const hs = await step(handshakeStep, () => handshakeThroughGateway(mesh, upstream));
  const webId = serviceSpiffeId(upstream.tdB, 'dc-b', { name: 'web' });
  const routed = mesh.gatewayA.routed.at(-1);
  const target = routed?.target;
  if (hs.serverSaw !== webId)
    throw new StepFailure(handshakeStep, `the server saw ${hs.serverSaw}, expected ${webId}`);
  if (!routed || !target || target.port !== mesh.apiSlot.port)
    throw new StepFailure(
      handshakeStep,
      `A's gateway stand-in did not route the connection to api's sidecar (${JSON.stringify(routed)})`,
    );
  out(
    `6 ✓ mTLS handshake web (dc-b) → A's gateway → api (dc-a): server saw ${hs.serverSaw}, client saw ${hs.clientSaw}`,
  );
  out(
    `      ${hs.protocol ?? 'TLS'}; A's gateway (127.0.0.1:${mesh.gatewayA.address.port}) routed SNI ${routed.serverName} to api's sidecar ${target.host}:${target.port}`,
  );
  return { a, b };
}
