/**
 * Two xDS servers in one process (the demo runs two clusters so) share nothing: each flushes its
 * own streams and counts its own pushes.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { TypeUrl } from '../../src/xds/types.js';
import { connectDelta, type Received } from '../helpers/fake-envoy.js';
import { metricValue, startXds, type XdsHarness } from '../helpers/xds-harness.js';
import { secret } from '../helpers/resources.js';

const started: XdsHarness[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((h) => h.close()));
});

async function server(): Promise<XdsHarness> {
  const h = await startXds();
  started.push(h);
  return h;
}

const pushes = (h: XdsHarness) =>
  metricValue(h.metrics, 'isthmus_xds_pushes_total', { type: 'SDS' });
const versions = (r: Received<unknown>) => r.resources.map((x) => `${x.name}@${x.version}`);

describe('two xDS servers in one process', () => {
  it('serve the same node id each from its own cache, and count only their own pushes', async () => {
    const a = await server();
    const b = await server();
    a.cache.setProxyResources('n', [secret('s', 'from-a')]);
    b.cache.setProxyResources('n', [secret('s', 'from-b')]);
    const ea = connectDelta(a.client, 'n');
    const eb = connectDelta(b.client, 'n');
    // Both subscribe at once: each request is flushed by its own server's scheduler.
    ea.send(TypeUrl.secret, { subscribe: ['s'] });
    eb.send(TypeUrl.secret, { subscribe: ['s'] });
    const [ra, rb] = await Promise.all([ea.next(), eb.next()]);
    expect(versions(ra)).toEqual([
      `s@${a.cache.view('n')!.resources.get(TypeUrl.secret)!.get('s')!.version}`,
    ]);
    expect(versions(rb)).toEqual([
      `s@${b.cache.view('n')!.resources.get(TypeUrl.secret)!.get('s')!.version}`,
    ]);
    expect(versions(ra)).not.toEqual(versions(rb));
    ea.ack(ra);
    eb.ack(rb);
    expect(await pushes(a)).toBe(1);
    expect(await pushes(b)).toBe(1);

    // Three more pushes on server a; server b pushes nothing and counts nothing.
    for (const v of ['a2', 'a3', 'a4']) {
      a.cache.setProxyResources('n', [secret('s', v)]);
      ea.ack(await ea.next());
    }
    expect(await eb.quietFor(200)).toBe(true);
    expect(await pushes(a)).toBe(4);
    expect(await pushes(b)).toBe(1);
    expect(a.server.streamStatuses().map((s) => s.types.get(TypeUrl.secret)?.sent.size)).toEqual([
      1,
    ]);
    ea.close();
    eb.close();
  });
});
