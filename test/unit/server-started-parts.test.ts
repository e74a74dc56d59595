/**
 * docs/architecture.md §1: a failed start closes exactly the parts already created, and a stop
 * runs in one fixed order whatever the order of creation, every step even if one fails.
 */
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log.js';
import { type PartName, StartedParts } from '../../src/server/started-parts.js';

function recorder() {
  const stopped: string[] = [];
  const parts = new StartedParts(silentLogger());
  const add = (name: PartName, fail = false) =>
    parts.add(name, { name }, async (p) => {
      stopped.push(p.name);
      if (fail) throw new Error(`${p.name} failed to stop`);
    });
  return { parts, stopped, add };
}

describe('StartedParts', () => {
  it('stops only the parts made, in the stop order, not the order of making', async () => {
    const { parts, stopped, add } = recorder();
    for (const name of ['store', 'catalog', 'ca', 'acl', 'xds', 'peerings'] as const) add(name);
    await parts.stopAll();
    expect(stopped).toEqual(['xds', 'catalog', 'peerings', 'ca', 'acl', 'store']);
  });

  it('runs every step when one fails, and rejects with the first failure', async () => {
    const { parts, stopped, add } = recorder();
    add('store');
    add('http', true);
    add('xds', true);
    await expect(parts.stopAll()).rejects.toThrow('xds failed to stop');
    expect(stopped).toEqual(['xds', 'http', 'store']);
  });

  it('stops once, reports shutting down at once and the parts gone after', async () => {
    const { parts, stopped, add } = recorder();
    add('store');
    expect([parts.shuttingDown, parts.has('store'), parts.has('xds')]).toEqual([
      false,
      true,
      false,
    ]);
    const first = parts.stopAll();
    expect(parts.shuttingDown).toBe(true);
    expect(parts.stopAll()).toBe(first);
    await first;
    expect(stopped).toEqual(['store']);
    expect(parts.has('store')).toBe(false);
  });
});
