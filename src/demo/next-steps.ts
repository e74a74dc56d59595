import type { TourResult } from './tour.js';

/** The tour's closing lines: commands with the clusters' real addresses. */
export function whereToLookNext({ a, b }: TourResult, keepRunning: boolean, logFile: string): string[] {
  const lines = [
    '',
    'Where to look next:',
    `  isthmus proxy-status --http-addr ${a.httpAddr}      # A's proxies and what they were sent (B: --http-addr ${b.httpAddr})`,
    `  isthmus peering list --http-addr ${b.httpAddr}      # B's peerings (A: --http-addr ${a.httpAddr})`,
    `  curl http://${a.httpAddr}/metrics                   # Prometheus metrics (B: http://${b.httpAddr}/metrics)`,
    `  curl http://${a.httpAddr}/healthz`,
    `  curl http://${b.httpAddr}/healthz`,
  ];
  if (keepRunning) lines.push(`  server logs: ${logFile}`);
  else lines.push('The clusters stop now; run `isthmus demo --keep-running` to keep them up and try the commands above.');
  return lines;
}
