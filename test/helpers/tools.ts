/**
 * External programs some tests drive for real (Debian packages that `.ci/run` installs):
 * docker-compose, prometheus, promtool. Under CI a missing one is a failure; on a developer
 * machine without it the test is skipped with the reason.
 */
import { spawnSync } from 'node:child_process';

export function hasTool(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
}

/** `describe.skipIf(skipWithout(...))`: true (skip) only when a tool is missing outside CI. */
export function skipWithout(...tools: string[]): boolean {
  const missing = tools.filter((t) => !hasTool(t));
  if (missing.length === 0) return false;
  if (process.env.CI)
    throw new Error(
      `${missing.join(', ')} missing: .ci/run installs them (apt-get install docker-compose prometheus)`,
    );
  console.warn(
    `skipping: ${missing.join(', ')} not installed (apt-get install docker-compose prometheus)`,
  );
  return true;
}
