import type { Command } from 'commander';
import { withDeadline } from '../probe/deadline.js';

/** How long stopping may take before the process exits anyway. */
const hardExitMs = 10_000;

/**
 * `isthmus demo`: two clusters on loopback in this process, peered, with a guided tour on stdout
 * (issue 6). Exit 0 only if every step worked; a failed step prints `✗ <step>: <reason>` and exits 1.
 * SIGINT/SIGTERM stop everything and remove the temporary directory: exit 130 during the tour, 0
 * once `--keep-running` holds the clusters up after a successful tour.
 */
export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('run two peered clusters on 127.0.0.1 and print a guided tour (no Docker, no Envoy)')
    .option('--keep-running', 'keep both clusters up after the tour until Ctrl-C')
    .action(async (opts: { keepRunning?: boolean }) => {
      process.exit(await runDemo(opts.keepRunning === true));
    });
}

async function runDemo(keepRunning: boolean): Promise<number> {
  // Loaded lazily so `isthmus --help` does not pay for fastify, gRPC and LMDB.
  const { DemoRun, runTour, StepFailure, whereToLookNext } = await import('../demo/index.js');
  // A closed stdout (`isthmus demo | head`) must not crash the demo before it has cleaned up.
  let stdoutOpen = true;
  process.stdout.on('error', () => (stdoutOpen = false));
  const out = (line: string) => void (stdoutOpen && process.stdout.write(`${line}\n`));
  const run = new DemoRun();
  /** Stops everything; a stop that outlives `hardExitMs` makes the exit code 1. */
  const stopThen = (code: number) => withDeadline(run.stop(), { timeoutMs: hardExitMs, what: 'the demo to stop' }).then(() => code, () => 1);
  let touring = true;
  const finished = new Promise<number>((resolve) => {
    const onSignal = () => {
      if (run.stopped) return void process.exit(1);
      void stopThen(touring ? 130 : 0).then(resolve);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
  const tour = runTour(run, out).then(
    (result) => ({ ok: true as const, result }),
    (err: unknown) => ({ ok: false as const, err }),
  );
  const outcome = await Promise.race([tour, finished.then((code) => ({ ok: false as const, code }))]);
  if ('code' in outcome) return outcome.code;
  if (!outcome.ok) {
    if (run.stopped) return finished;
    const step = outcome.err instanceof StepFailure ? outcome.err.step : 'demo';
    const reason = outcome.err instanceof Error ? outcome.err.message : String(outcome.err);
    out(`✗ ${step}: ${reason.replace(/\s*\n\s*/g, ' ')}`);
    return stopThen(1);
  }
  for (const line of whereToLookNext(outcome.result, keepRunning, run.logFile)) out(line);
  if (!keepRunning) return stopThen(0);
  touring = false;
  out('Both clusters keep running; press Ctrl-C to stop them.');
  return finished;
}
