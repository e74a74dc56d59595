/**
 * Issue 21 §3: values from outside are clipped at the logger, and repeated warnings and errors are
 * rate-limited with a count of what was dropped, so a flood writes a bounded number of bytes.
 */
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { logLimits } from '../../src/log-limits.js';
import { waitFor } from '../helpers/wait.js';

function capture() {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(chunk.toString());
      cb();
    },
  });
  return { lines, logger: createLogger('info', sink), bytes: () => lines.join('').length };
}

describe('log limits', () => {
  it('clips every string field, the message and an error, keeping the line JSON', () => {
    const { lines, logger } = capture();
    const mb = 'n'.repeat(1 << 20);
    logger.info({ name: mb, nested: { list: Array.from({ length: 100 }, () => mb) } }, `hi ${mb}`);
    logger.error({ err: new Error(`bad ${mb}`) }, 'failed');
    const info = JSON.parse(lines[0]!);
    expect(info.name).toBe(`${'n'.repeat(256)}…(${(1 << 20) - 256} more)`);
    expect(info.nested.list).toHaveLength(logLimits.items + 1);
    expect(info.nested.list.at(-1)).toBe('…(68 more)');
    expect(info.msg.length).toBeLessThan(1_100);
    const error = JSON.parse(lines[1]!);
    expect(error.err.message.length).toBeLessThan(1_100);
    expect(error.err.stack.length).toBeLessThan(4_200);
    expect(lines.join('').length).toBeLessThan(32 * 1024);
  });

  it('writes a flood of one warning 20 times a second and reports how many it dropped', async () => {
    const { lines, logger, bytes } = capture();
    const big = 'x'.repeat(1 << 20);
    for (let i = 0; i < 10_000; i++) logger.warn({ name: big }, 'bad request');
    // Another message is not held back by the flood.
    logger.warn('something else');
    // Every line is either written or counted in a report (one per window the flood spanned).
    const written = () => lines.filter((l) => l.includes('"msg":"bad request"')).length;
    const reports = () =>
      lines.map((l) => JSON.parse(l)).filter((l) => l.dropped !== undefined) as {
        dropped: number;
        msg: string;
      }[];
    await waitFor(() => written() + reports().reduce((n, r) => n + r.dropped, 0) === 10_000, {
      timeoutMs: 10_000,
      what: 'every dropped line reported',
    });
    for (const r of reports())
      expect(r.msg).toBe(`dropped ${r.dropped} similar messages: bad request`);
    expect(written()).toBeLessThanOrEqual(reports().length * logLimits.linesPerWindow + 20);
    expect(lines.some((l) => l.includes('something else'))).toBe(true);
    // 10,000 lines of 1 MB each were asked for: about 10 KB were written.
    expect(bytes()).toBeLessThan(64 * 1024);
  });
});
