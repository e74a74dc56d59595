import { readFileSync } from 'node:fs';

let cached: string | undefined;

/** The `version` of package.json: what `--version` prints and `isthmus_build_info` reports. */
export function isthmusVersion(): string {
  if (cached === undefined) {
    const pkg = JSON.parse(
      readFileSync(new URL('../../package.json', import.meta.url), 'utf8'),
    ) as { version?: unknown };
    cached = typeof pkg.version === 'string' ? pkg.version : '0.0.0';
  }
  return cached;
}
