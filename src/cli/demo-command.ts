import { type Command, Option } from 'commander';
import { parseEnvoyChoice, type EnvoyChoice } from '../demo/envoy-binary.js';
import { withDeadline } from '../probe/deadline.js';
import { err, ok } from '../result.js';

/** How long stopping may take before the process exits anyway. */
const hardExitMs = 10_000;

/**
 * `isthmus demo`: two clusters on loopback in this process, peered, with a guided tour on stdout
 * (issue 6). With Envoy (`--envoy`, default: `envoy` on the PATH if there is one) every proxy is a
 * real Envoy process and the tour ends with a real request through both mesh gateways; without,
 * the proxies are stand-ins. Exit 0 only if every step worked; a failed step prints
 * `✗ <step>: <reason>` (and, for an Envoy, its last log lines) and exits 1; a bad `--envoy` is a
 * usage error (exit 2). SIGINT/SIGTERM stop everything (Envoys and apps too) and remove the
 * temporary directory: exit 130 during the tour, 0 once `--keep-running` holds it all up after a
 * successful tour.
 */
export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description(
      'run two peered clusters on 127.0.0.1 and print a guided tour, with real Envoy proxies when envoy is found',
    )
    .option('--keep-running', 'keep everything up after the tour until Ctrl-C')
    .addOption(
      new Option(
        '--envoy <auto|off|PATH>',
        'auto: envoy on the PATH if there is one; off: stand-ins for the proxies; PATH: that envoy binary',
      ).default('auto'),
    )
    .action(async (opts: { keepRunning?: boolean; envoy: string }, cmd: Command) => {
      const envoy = parseEnvoyChoice(opts.envoy);
      if (envoy.kind === 'error') cmd.error(envoy.message, { exitCode: 2, code: 'isthmus.usage' });
      process.exit(await runDemo(opts.keepRunning === true, envoy));
    });
}

async function runDemo(keepRunning: boolean, envoy: EnvoyChoice): Promise<number> {
  // Loaded lazily so `isthmus --help` does not pay for fastify, gRPC and LMDB.
  const { DemoRun, getEnvoyHint, runEnvoyTour, runTour, StepFailure, whereToLookNext } =
    await import('../demo/index.js');
  // A closed stdout (`isthmus demo | head`) must not crash the demo before it has cleaned up.
  let stdoutOpen = true;
  process.stdout.on('error', () => (stdoutOpen = false));
  const out = (line: string) => void (stdoutOpen && process.stdout.write(`${line}\n`));
  const run = new DemoRun();
  /** Stops everything; a stop that outlives `hardExitMs` makes the exit code 1. */
  const stopThen = (code: number) =>
    withDeadline(run.stop(), { timeoutMs: hardExitMs, what: 'the demo to stop' }).then(
      () => code,
      () => 1,
    );
  let touring = true;
  const finished = new Promise<number>((resolve) => {
    const onSignal = () => {
      if (run.stopped) return void process.exit(1);
      void stopThen(touring ? 130 : 0).then(resolve);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
  if (envoy.kind === 'none') out(getEnvoyHint(envoy.why));
  const tour = (envoy.kind === 'envoy' ? runEnvoyTour(run, envoy, out) : runTour(run, out)).then(
    (result) => ok(result),
    (e: unknown) => err(e),
  );
  // The tour's result, or the exit code when a signal stopped the demo first.
  const outcome = await Promise.race([tour, finished.then((code) => ({ stoppedWith: code }))]);
  if ('stoppedWith' in outcome) return outcome.stoppedWith;
  if (!outcome.ok) {
    if (run.stopped) return finished;
    const failure = outcome.error;
    const step = failure instanceof StepFailure ? failure.step : 'demo';
    const reason = failure instanceof Error ? failure.message : String(failure);
    out(`✗ ${step}: ${reason.replace(/\s*\n\s*/g, ' ')}`);
    if (failure instanceof StepFailure) for (const line of failure.details) out(`    ${line}`);
    return stopThen(1);
  }
  for (const line of whereToLookNext(outcome.value, keepRunning, run.workDir)) out(line);
  if (!keepRunning) return stopThen(0);
  touring = false;
  out(
    `${envoy.kind === 'envoy' ? 'The clusters, Envoys and apps' : 'Both clusters'} keep running; press Ctrl-C to stop them.`,
  );
  return finished;
}
