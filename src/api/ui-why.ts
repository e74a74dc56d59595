import type { CatalogReader } from '../catalog/types.js';
import { IsthmusError } from '../errors.js';
import { intentionVerdict } from '../snapshot/intentions.js';
import {
  type Check,
  type Checklist,
  checklist,
  fail,
  pass,
  skip,
} from '../troubleshoot/checklist.js';
import {
  type TroubleshootSources,
  gatherPeeringFacts,
  gatherUpstreamFacts,
  upstreamReport,
} from '../troubleshoot/index.js';
import {
  certificatesValid,
  heartbeatAge,
  meshGateway,
  streamUp,
} from '../troubleshoot/peering-checks.js';
import { exportedServices } from './peering-routes.js';

/** A call the UI asks about: a service (of a peer, or local when `peer` is '') calling another. */
export interface WhyQuery {
  readonly source: string;
  readonly sourcePeer: string;
  readonly destination: string;
  readonly destinationPeer: string;
}

type Sources = TroubleshootSources & { readonly ca: { readonly trustDomain: string } };

/**
 * "Why can't `source` call `destination`?" as this cluster sees it (issue 17), from troubleshoot's
 * own checks: the peering the call crosses, the export (ours to the source's peer) or the import
 * (the destination's peer's to us), the intention that decides, and the source sidecar's upstream
 * with its chain. A call into a peer's service is allowed or denied by that peer's intentions:
 * that check is skipped here and names where to look.
 */
export function whyChecklist(src: Sources, q: WhyQuery): Checklist {
  const peer = q.destinationPeer || q.sourcePeer;
  const checks: Check[] = [];
  if (peer) checks.push(...peeringChecks(src, peer));
  if (q.destinationPeer) checks.push(imported(src, q.destination, q.destinationPeer));
  else checks.push(registered(src.catalog, q.destination));
  if (q.sourcePeer && !q.destinationPeer) checks.push(exported(src, q.destination, q.sourcePeer));
  checks.push(intention(src.catalog, q));
  if (!q.sourcePeer) checks.push(...upstreamChecks(src, q));
  const from = q.sourcePeer ? `${q.source} (peer ${q.sourcePeer})` : q.source;
  const to = q.destinationPeer ? `${q.destination} (peer ${q.destinationPeer})` : q.destination;
  return checklist(`${from} → ${to}`, checks);
}

function peeringChecks(src: Sources, peer: string): Check[] {
  let facts: ReturnType<typeof gatherPeeringFacts>;
  try {
    facts = gatherPeeringFacts(src, peer);
  } catch (e) {
    if (!(e instanceof IsthmusError)) throw e;
    return [fail('peering', e.message, `establish a peering named ${peer}`)];
  }
  return [streamUp, heartbeatAge, meshGateway, certificatesValid].map((c) => c(facts));
}

function imported(src: Sources, name: string, peer: string): Check {
  return src.imported.serviceNames(peer).includes(name)
    ? pass('import', `${name} is imported from ${peer}`)
    : fail(
        'import',
        `${peer} exports no service ${name} to this cluster`,
        `on ${peer}, add this cluster's peering to the consumers of ${name} in its exported-services entry`,
      );
}

function registered(catalog: CatalogReader, name: string): Check {
  const own = catalog.instancesOf(name).filter((i) => i.kind === 'typical');
  if (own.length === 0)
    return fail('destination', `no instance of ${name} is registered`, `register ${name}`);
  if (catalog.sidecarsOf(name).length === 0)
    return fail(
      'destination',
      `${name} has no sidecar proxy, so it takes no mesh traffic`,
      `register a connect-proxy for ${name}`,
    );
  return pass('destination', `${name}: ${own.length} instance(s) with a sidecar`);
}

function exported(src: Sources, name: string, peer: string): Check {
  const peers = exportedServices(src.catalog).find((e) => e.Service === name)?.Consumers.Peers;
  return peers?.includes(peer)
    ? pass('export', `${name} is exported to ${peer}`)
    : fail(
        'export',
        `${name} is not exported to ${peer}`,
        `add ${peer} to the consumers of ${name} in the exported-services entry`,
      );
}

function intention(catalog: CatalogReader, q: WhyQuery): Check {
  if (q.destinationPeer)
    return skip(
      'intention',
      `${q.destinationPeer}'s intentions decide calls into its ${q.destination}: ask its UI or troubleshoot there`,
    );
  const v = intentionVerdict(catalog, q.destination, { name: q.source, peer: q.sourcePeer });
  const by = v.intention ? `intention ${v.intention}` : 'the mesh default (no intention matches)';
  if (v.action === 'allow') return pass('intention', `allowed by ${by}`);
  if (v.action === 'l7') return pass('intention', `decided per request by ${by}`);
  const source = q.sourcePeer ? `${q.source} with Peer ${q.sourcePeer}` : q.source;
  return fail(
    'intention',
    `denied by ${by}`,
    `add a service-intentions source ${source}, Action allow, to ${q.destination}`,
  );
}

/** The source's sidecars that name the destination; the first one's upstream report. */
function upstreamChecks(src: Sources, q: WhyQuery): Check[] {
  const label = q.destinationPeer ? `${q.destination}?peer=${q.destinationPeer}` : q.destination;
  const sidecar = src.catalog
    .sidecarsOf(q.source)
    .find((s) =>
      (s.proxy?.upstreams ?? []).some(
        (u) => u.destinationName === q.destination && u.destinationPeer === q.destinationPeer,
      ),
    );
  if (!sidecar)
    return [
      fail(
        'upstream',
        `no sidecar of ${q.source} has an upstream ${label}`,
        `add the upstream ${label} to ${q.source}'s sidecar registration`,
      ),
    ];
  const report = upstreamReport(gatherUpstreamFacts(src, sidecar.id, label));
  return report.Checks.map((c) => ({ ...c, Name: `upstream: ${c.Name}` }));
}
