import { join } from 'node:path';
import type { EnvoyTourResult } from './envoy-tour.js';
import type { TourResult } from './tour.js';

/** The tour's closing lines: commands with the clusters' (and Envoys') real addresses. */
export function whereToLookNext(
  result: TourResult | EnvoyTourResult,
  keepRunning: boolean,
  workDir: string,
): string[] {
  const { a, b } = result;
  const lines = ['', 'Where to look next:'];
  if ('envoys' in result) lines.push(...envoyLines(result));
  lines.push(
    `  isthmus proxy-status --http-addr ${a.httpAddr}      # A's proxies and what they were sent (B: --http-addr ${b.httpAddr})`,
    `  isthmus peering list --http-addr ${b.httpAddr}      # B's peerings (A: --http-addr ${a.httpAddr})`,
    `  curl http://${a.httpAddr}/metrics                   # Prometheus metrics (B: http://${b.httpAddr}/metrics)`,
    `  curl http://${a.httpAddr}/healthz`,
    `  curl http://${b.httpAddr}/healthz`,
  );
  const what = 'envoys' in result ? 'The clusters, Envoys and apps' : 'The clusters';
  if (keepRunning) {
    lines.push(`  server logs: ${join(workDir, 'isthmus.log')}`);
    if ('envoys' in result) lines.push(`  Envoy logs:  ${join(workDir, 'envoy')}/<proxy>.log`);
  } else
    lines.push(
      `${what} stop now; run \`isthmus demo --keep-running\` to keep them up and try the commands above.`,
    );
  return lines;
}

function envoyLines({ mesh, envoys }: EnvoyTourResult): string[] {
  const lines: [string, string][] = [
    [
      `curl http://127.0.0.1:${mesh.web.port}/hello`,
      "B's web app calls api through the mesh again",
    ],
    [
      `curl http://127.0.0.1:${mesh.ports.upstream}/hello`,
      "what web's app does: into its sidecar's upstream listener for api",
    ],
    [
      `curl http://127.0.0.1:${mesh.ports.localUpstream}/hello`,
      `web's upstream api in B itself (README "Fail over to a peer")`,
    ],
    ...[...envoys].map(([name, e]): [string, string] => [
      `curl ${e.adminUrl}/clusters`,
      `${name}'s Envoy admin (also /config_dump, /stats, /certs)`,
    ]),
  ];
  const width = Math.max(...lines.map(([cmd]) => cmd.length));
  return lines.map(([cmd, what]) => `  ${cmd.padEnd(width)}  # ${what}`);
}
