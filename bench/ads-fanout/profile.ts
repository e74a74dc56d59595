/**
 * `--profile PREFIX`: V8 CPU profiles of the server process, one per push round and covering that
 * round only (`PREFIX-round<N>.cpuprofile`; open in Chrome DevTools or speedscope). Sampling slows
 * the server: figures of a profiled run are not comparable with the targets.
 */
import { writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';

export interface RoundProfiler {
  begin(): Promise<void>;
  end(round: number): Promise<void>;
  close(): void;
}

const off: RoundProfiler = {
  begin: async () => undefined,
  end: async () => undefined,
  close: () => undefined,
};

export async function roundProfiler(prefix: string | undefined): Promise<RoundProfiler> {
  if (!prefix) return off;
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 200 });
  return {
    begin: async () => {
      await session.post('Profiler.start');
    },
    end: async (round) => {
      const { profile } = await session.post('Profiler.stop');
      const file = `${prefix}-round${round}.cpuprofile`;
      await writeFile(file, JSON.stringify(profile));
      console.error(`bench:ads-fanout: CPU profile of push round ${round} written to ${file}`);
    },
    close: () => session.disconnect(),
  };
}
