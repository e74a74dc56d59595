/**
 * `--profile PREFIX`: a V8 CPU profile of each figure, from its first measured iteration to its
 * last (warm-up left out; the untimed work between rebuilds, such as the catalog change, is in it),
 * written to `PREFIX-<case>-<cold|warm>.cpuprofile`. Summarize with `node bin/run-ts.js
 * bench/snapshot/hotspots.ts FILE...`. Sampling slows the process: do not judge a profiled run's
 * figures against the targets.
 */
import { writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';

export interface Profiler {
  begin(): Promise<void>;
  end(label: string): Promise<void>;
}

export const noProfiler: Profiler = { begin: async () => undefined, end: async () => undefined };

export async function cpuProfiler(prefix: string | undefined): Promise<Profiler> {
  if (!prefix) return noProfiler;
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 100 });
  return {
    begin: async () => {
      await session.post('Profiler.start');
    },
    end: async (label) => {
      const { profile } = await session.post('Profiler.stop');
      const file = `${prefix}-${label}.cpuprofile`;
      await writeFile(file, JSON.stringify(profile));
      console.error(`bench:snapshot: CPU profile of ${label} written to ${file}`);
    },
  };
}
