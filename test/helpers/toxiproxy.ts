/**
 * A real Toxiproxy (`toxiproxy-server`, built by `.ci/run` from its pinned Go module) between two
 * processes on loopback, driven through its HTTP API with `toxiproxy-node-client`: the network
 * faults of docs/architecture.md "Failure modes" — latency, bandwidth, black holes, resets, sliced
 * packets and partitions — injected into real connections.
 */
import { spawn } from 'node:child_process';
import {
  type ICreateToxicBody,
  type Proxy as ToxiproxyProxy,
  type Toxic,
  Toxiproxy,
} from 'toxiproxy-node-client';
import { freePort } from './process.js';
import { hasTool } from './tools.js';
import { waitFor, withDeadline } from './wait.js';

/** `describe.skipIf(skipWithoutToxiproxy())`: skips outside CI only; under CI a missing one fails. */
export function skipWithoutToxiproxy(): boolean {
  if (hasTool('toxiproxy-server')) return false;
  const how = 'bash .ci/run builds it, or: scripts/install-toxiproxy.sh';
  if (process.env.CI) throw new Error(`toxiproxy-server missing: ${how}`);
  console.warn(`skipping: toxiproxy-server not installed (${how})`);
  return true;
}

export interface ToxiproxyServer {
  readonly client: Toxiproxy;
  /** A proxy listening on a free 127.0.0.1 port in front of `upstream` (`host:port`). */
  proxy(name: string, upstream: string): Promise<FaultyLink>;
  stop(): Promise<void>;
}

/** One proxied link and the faults put on it. */
export interface FaultyLink {
  /** Where clients connect instead of the upstream: `127.0.0.1:<port>`. */
  readonly listen: string;
  /** Adds a toxic (on the downstream, server → client, direction unless `stream` says). */
  add<T>(toxic: Omit<ICreateToxicBody<T>, 'toxicity'> & { toxicity?: number }): Promise<void>;
  /** Removes every toxic and enables the link again: the heal. */
  heal(): Promise<void>;
  /** A partition: the link refuses new connections and drops the open ones. */
  cut(): Promise<void>;
}

/** Starts `toxiproxy-server` on a free loopback port; `stop` kills it. */
export async function startToxiproxy(): Promise<ToxiproxyServer> {
  const port = await freePort();
  const child = spawn('toxiproxy-server', ['-host', '127.0.0.1', '-port', String(port)], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4_000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const client = new Toxiproxy(`http://127.0.0.1:${port}`);
  await waitFor(
    async () => {
      if (child.exitCode !== null) throw new Error(`toxiproxy-server exited: ${stderr}`);
      return client.getVersion().then(
        () => true,
        () => false,
      );
    },
    { timeoutMs: 15_000, intervalMs: 50, what: 'toxiproxy-server to answer' },
  );
  return {
    client,
    async proxy(name, upstream) {
      const created = await client.createProxy({ name, listen: '127.0.0.1:0', upstream });
      return link(created);
    },
    async stop() {
      if (child.exitCode === null) child.kill('SIGKILL');
      await withDeadline(exited, { timeoutMs: 5_000, what: 'toxiproxy-server to exit' });
    },
  };
}

function link(proxy: ToxiproxyProxy): FaultyLink {
  let current = proxy;
  const toxics: Toxic<unknown>[] = [];
  const enable = async (enabled: boolean) => {
    current = await current.update({ enabled, listen: current.listen, upstream: current.upstream });
  };
  return {
    listen: proxy.listen,
    async add(toxic) {
      toxics.push(await current.addToxic({ toxicity: 1, ...toxic }));
    },
    async heal() {
      for (const toxic of toxics.splice(0)) await toxic.remove();
      await enable(true);
    },
    cut: () => enable(false),
  };
}
