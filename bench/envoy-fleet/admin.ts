/**
 * Reading a fleet of Envoy admin endpoints cheaply: node:http on kept-alive connections (half the
 * client CPU of fetch per request, which matters when the poller shares 2 cores with the server
 * and every Envoy), and hints from each Envoy's `config` debug log that it just accepted an update.
 */
import { Agent, get } from 'node:http';
import type { EnvoyProcess } from '../../test/envoy/harness.js';

const agent = new Agent({ keepAlive: true, maxSockets: 1 });

/** GET `path` from the Envoy's admin; rejects on a status other than 200. */
export function adminGet(envoy: EnvoyProcess, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    get(`${envoy.adminUrl}${path}`, { agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () =>
        res.statusCode === 200
          ? resolve(body)
          : reject(
              new Error(`${envoy.name} ${path}: HTTP ${res.statusCode} ${body.slice(0, 200)}`),
            ),
      );
      res.on('error', reject);
    }).on('error', reject);
  });
}

/** Closes the kept-alive admin connections (at the end of the run). */
export function closeAdminConnections(): void {
  agent.destroy();
}

/**
 * Calls `hint(i)` whenever Envoy i logs that it accepted an update of `typeName` (e.g.
 * `ClusterLoadAssignment`, `Secret`); returns the function that stops listening. Envoy writes a
 * log line in one write, so the type and "accepted" arrive in one chunk.
 */
export function acceptedHints(
  envoys: readonly EnvoyProcess[],
  typeName: string,
): (hint: (i: number) => void) => () => void {
  const needle = `.${typeName} accepted`;
  return (hint) => {
    const listeners = envoys.map((e, i) => {
      const listener = (chunk: string | Buffer) => {
        if (String(chunk).includes(needle)) hint(i);
      };
      e.child.stderr!.on('data', listener);
      return listener;
    });
    return () => envoys.forEach((e, i) => e.child.stderr!.off('data', listeners[i]!));
  };
}
