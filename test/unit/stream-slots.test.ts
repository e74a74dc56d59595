import { describe, expect, it } from 'vitest';
import { IsthmusError } from '../../src/errors.js';
import { StreamSlots } from '../../src/xds/stream-slots.js';

describe('StreamSlots (issue 18: xDS stream limits)', () => {
  it('counts only admitted streams against the stream limit', () => {
    const slots = new StreamSlots(2, 8);
    const [a, b, c, idle] = [{}, {}, {}, {}];
    slots.opened(idle, undefined);
    slots.claim(a);
    slots.claim(b);
    expect(() => slots.claim(c)).toThrow(/limit reached \(2\).*--xds-max-streams/);
    expect(slots.release(idle)).toBe(false);
    expect(slots.release(a)).toBe(true);
    slots.claim(c);
  });

  it('counts every open stream of a token, admitted or not, and frees it on close', () => {
    const slots = new StreamSlots(100, 2);
    const [a, b] = [{}, {}];
    for (const s of [a, b]) {
      slots.open('t');
      slots.opened(s, 't');
    }
    let refused: unknown;
    try {
      slots.open('t');
    } catch (err) {
      refused = err;
    }
    expect(refused).toBeInstanceOf(IsthmusError);
    expect((refused as IsthmusError).code).toBe('resource_exhausted');
    expect((refused as IsthmusError).message).toContain('--xds-max-streams-per-token 2');
    slots.open('other');
    slots.open(undefined);
    slots.release(a);
    slots.open('t');
  });
});
