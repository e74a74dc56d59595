import type { Command } from 'commander';
// The checklist module only: the troubleshoot barrel pulls in the gatherer and the generated Envoy
// protos.
import { type Checklist, renderChecklist } from '../troubleshoot/checklist.js';
import { type UpstreamReport, renderUpstreamReport } from '../troubleshoot/upstream-checks.js';
import { apiClientFor, withApiOptions } from './api-options.js';
import { print } from './output.js';

/**
 * `isthmus troubleshoot peering --name P`, `isthmus troubleshoot proxy ID` and `isthmus
 * troubleshoot upstream ID UPSTREAM` (the chain and its targets first): a ✓/✗ checklist
 * where every ✗ says how to fix it. Exit 0 when every check passes, 1 when any fails (either
 * format), so scripts can branch on it.
 */
export function registerTroubleshootCommand(program: Command): void {
  const troubleshoot = program
    .command('troubleshoot')
    .description(
      'check a peering or a proxy step by step and say how to fix what fails (HTTP API)',
    );
  withApiOptions(troubleshoot.command('peering'))
    .description(
      'token used, stream up, heartbeats, peer CA, exports and imports, mesh gateway, NACKs, certificates',
    )
    .requiredOption('--name <NAME>', "the peering's local name (see isthmus peering list)")
    .action(async (opts: { name: string }, cmd: Command) => {
      await show(cmd, `/v1/troubleshoot/peering/${encodeURIComponent(opts.name)}`);
    });
  withApiOptions(
    troubleshoot
      .command('proxy')
      .argument('<ID>', "the proxy's registered service ID (its node.id)"),
  )
    .description(
      'registered, connected over xDS, each type synced, NACKs, certificates, peered and cross-datacenter upstreams',
    )
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      await show(cmd, `/v1/troubleshoot/proxy/${encodeURIComponent(id)}`);
    });
  withApiOptions(
    troubleshoot
      .command('upstream')
      .argument('<PROXY-ID>', "the proxy's registered service ID (its node.id)")
      .argument('<UPSTREAM>', "the upstream's destination service (api, or api?peer=P)"),
  )
    .description(
      'the discovery chain an upstream resolved to: targets in failover order, their health, what Envoy ACKed',
    )
    .action(async (id: string, upstream: string, _opts: unknown, cmd: Command) => {
      const path = `/v1/troubleshoot/upstream/${encodeURIComponent(id)}/${encodeURIComponent(upstream)}`;
      await show(cmd, path, (r) => renderUpstreamReport(r as UpstreamReport));
    });
}

async function show(
  cmd: Command,
  path: string,
  render: (list: Checklist) => string = renderChecklist,
): Promise<void> {
  const { client, format } = apiClientFor(cmd);
  const list = await client.get<Checklist>(path);
  print(format === 'json' ? list : render(list));
  if (!list.OK) {
    process.exitCode = 1;
    if (format !== 'json') print(addressHint(cmd));
  }
}

/**
 * The fix commands are written for the default API address (or ISTHMUS_HTTP_ADDR / _TOKEN, which
 * they inherit). With the address or token given as flags they would talk to another server, so
 * say which flags to add ('' when none).
 */
function addressHint(cmd: Command): string {
  const flags: string[] = [];
  if (cmd.getOptionValueSource('httpAddr') === 'cli')
    flags.push(`--http-addr ${cmd.opts<{ httpAddr: string }>().httpAddr}`);
  if (cmd.getOptionValueSource('token') === 'cli') flags.push('--token <TOKEN>');
  if (flags.length === 0) return '';
  return `(run the isthmus commands above that are for this cluster with ${flags.join(' ')})`;
}
