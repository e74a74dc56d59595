import { CommanderError } from 'commander';
import { buildProgram } from './program.js';

/** Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error. */
export const exitCodes = { ok: 0, runtime: 1, usage: 2 } as const;

const quietExits = new Set(['commander.helpDisplayed', 'commander.version', 'commander.help']);

/** One line on stderr, `isthmus: <message>`, whatever the error. */
function report(message: string): void {
  process.stderr.write(
    `isthmus: ${message
      .replace(/^error: /, '')
      .replace(/\s*\n\s*/g, ' ')
      .trim()}\n`,
  );
}

function exitCodeOf(err: unknown): number {
  if (err instanceof CommanderError) {
    if (quietExits.has(err.code)) return err.exitCode === 0 ? exitCodes.ok : exitCodes.usage;
    report(err.message);
    return exitCodes.usage;
  }
  report(err instanceof Error ? err.message : String(err));
  return exitCodes.runtime;
}

try {
  await buildProgram().parseAsync(process.argv);
} catch (err) {
  process.exit(exitCodeOf(err));
}
