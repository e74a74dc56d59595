/**
 * Summarizes V8 CPU profiles (`.cpuprofile`, from `--profile` or `node --cpu-prof`): the functions
 * with the most self time, and self time per source file. Code loaded through tsx is reported at
 * positions in esbuild's output, not in the .ts source, so functions are named by file only, and
 * an anonymous function by the function that created it (its caller in the profile).
 *
 *   node bin/run-ts.js bench/snapshot/hotspots.ts [--top 25] FILE.cpuprofile...
 */
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

interface ProfileNode {
  readonly id: number;
  readonly callFrame: {
    readonly functionName: string;
    readonly url: string;
    readonly lineNumber: number;
  };
  readonly children?: readonly number[];
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/**
 * A file's path relative to the working directory (node_modules shortened to `~/`), or a node: URL.
 */
function where(url: string): string {
  if (!url.startsWith('file:')) return url;
  return relative(process.cwd(), fileURLToPath(url)).replace(/^.*node_modules\//, '~/');
}

type KeyOf = (n: ProfileNode, parent: ProfileNode | undefined) => string;

/** Self time (µs) per key; the delta after a sample is charged to that sample's node. */
function selfTimes(profile: CpuProfile, keyOf: KeyOf): Map<string, number> {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const parents = new Map<number, ProfileNode>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parents.set(c, n);
  const out = new Map<string, number>();
  profile.samples.forEach((id, i) => {
    const key = keyOf(nodes.get(id)!, parents.get(id));
    out.set(key, (out.get(key) ?? 0) + (profile.timeDeltas[i + 1] ?? 0));
  });
  return out;
}

function print(title: string, times: Map<string, number>, top: number): void {
  const total = [...times.values()].reduce((a, b) => a + b, 0);
  console.log(`${title} (total ${(total / 1000).toFixed(1)} ms sampled)`);
  for (const [key, us] of [...times].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(
      `  ${(us / 1000).toFixed(1).padStart(8)} ms  ${((100 * us) / total).toFixed(1).padStart(5)} %  ${key}`,
    );
  }
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { top: { type: 'string', default: '25' } },
});
const top = Number(values.top);
for (const file of positionals) {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const fn: KeyOf = (n, parent) => {
    const name =
      n.callFrame.functionName ||
      `(anonymous in ${parent?.callFrame.functionName || '(anonymous)'})`;
    return `${name}  ${where(n.callFrame.url)}`.trim();
  };
  const byFile: KeyOf = (n) => where(n.callFrame.url) || n.callFrame.functionName;
  console.log(`== ${file}`);
  print('self time by function', selfTimes(profile, fn), top);
  print('self time by file', selfTimes(profile, byFile), Math.min(top, 15));
  console.log('');
}
