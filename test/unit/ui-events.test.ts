/**
 * The web UI's change stream (src/api/ui-events.ts): proxy state comes from the xDS server's own
 * events, followed only while a UI is connected, and a burst of them goes out as one frame.
 */
import { EventEmitter } from 'node:events';
import type { ServerResponse } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { UiEvents } from '../../src/api/ui-events.js';
import { waitFor } from '../helpers/wait.js';

/** The part of a ServerResponse UiEvents writes to, recording the frames. */
class FakeResponse extends EventEmitter {
  readonly frames: string[] = [];
  writeHead() {
    return this;
  }
  write(chunk: string) {
    this.frames.push(chunk);
    return true;
  }
  end() {
    this.emit('close');
  }
  changes(): string[][] {
    return this.frames
      .filter((f) => f.startsWith('event: change'))
      .map((f) => JSON.parse(f.split('data: ')[1]!).topics);
  }
}

/** A stand-in for XdsServer.onProxyStateChange: how many listeners are subscribed now. */
function proxyEvents() {
  const listeners = new Set<() => void>();
  return {
    listeners,
    subscribe: (l: () => void) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    fire: () => {
      for (const l of listeners) l();
    },
  };
}

const open: UiEvents[] = [];
afterEach(() => {
  for (const e of open.splice(0)) e.close();
});

describe('UiEvents', () => {
  it('follows the xDS server only while a UI is connected', () => {
    const xds = proxyEvents();
    const events = new UiEvents({ subscriptions: [], proxies: xds.subscribe });
    open.push(events);
    expect(xds.listeners.size).toBe(0);
    const [a, b] = [new FakeResponse(), new FakeResponse()];
    events.attach(a as unknown as ServerResponse);
    events.attach(b as unknown as ServerResponse);
    expect(xds.listeners.size).toBe(1);
    a.end();
    expect(xds.listeners.size).toBe(1);
    b.end();
    expect(xds.listeners.size).toBe(0);
  });

  it('sends a burst of proxy events as one change', async () => {
    const xds = proxyEvents();
    let catalogChanged = () => {};
    const events = new UiEvents(
      {
        subscriptions: [
          {
            topic: 'catalog',
            subscribe: (l) => {
              catalogChanged = l;
              return () => {};
            },
          },
        ],
        proxies: xds.subscribe,
      },
      { coalesceMs: 20 },
    );
    open.push(events);
    const res = new FakeResponse();
    events.attach(res as unknown as ServerResponse);
    for (let i = 0; i < 10_000; i++) xds.fire();
    catalogChanged();
    await waitFor(() => res.changes().length > 0, { timeoutMs: 5_000, what: 'a change frame' });
    expect(res.changes()).toEqual([['catalog', 'proxies']]);
  });
});
