import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import type { ApiError } from './api.js';
import type { ApiState } from './use-api.js';

/** A status word as a badge: green for good, amber for pending, red for failed. */
export function Badge({ value }: { value: string }) {
  const tone = ['SYNCED', 'ACTIVE', 'passing', 'allow', 'yes'].includes(value)
    ? 'good'
    : ['NACKED', 'ERROR', 'FAILING', 'critical', 'deny', 'TERMINATED', 'no'].includes(value)
      ? 'bad'
      : 'warn';
  return <span class={`badge ${tone}`}>{value}</span>;
}

/** The page's data, or why it is missing: loading, or the API's refusal with the scope it needs. */
export function Loaded<T>({
  state,
  children,
}: {
  state: ApiState<T>;
  children: (data: T) => ComponentChildren;
}) {
  return (
    <>
      {state.error && <ErrorNote error={state.error} />}
      {state.data === undefined ? !state.error && <p>Loading…</p> : children(state.data)}
    </>
  );
}

function ErrorNote({ error }: { error: ApiError | Error }) {
  const scope = 'scope' in error && error.scope;
  return (
    <div class="error" role="alert">
      {scope ? <strong>Missing scope: {scope}. </strong> : null}
      {error.message}
    </div>
  );
}

/** One timer for every ticking time on the page, running only while one is shown. */
const tickers = new Set<(now: number) => void>();
let tickTimer: ReturnType<typeof setInterval> | undefined;

/** `performance.now()`, re-rendering the caller every second. */
function useNow(): number {
  const [now, setNow] = useState(() => performance.now());
  useEffect(() => {
    tickers.add(setNow);
    tickTimer ??= setInterval(() => {
      const t = performance.now();
      for (const tick of tickers) tick(t);
    }, 1000);
    return () => {
      tickers.delete(setNow);
      if (tickers.size > 0) return;
      clearInterval(tickTimer);
      tickTimer = undefined;
    };
  }, []);
  return now;
}

/**
 * A time the server measured relative to its answer (`ms`, e.g. a heartbeat's age), counted on in
 * the browser every second from `receivedAt` (`ApiState.receivedAt`): no request per tick, and no
 * skew between the server's clock and the browser's. `sign` -1 counts down (time left).
 */
export function Ticking(props: {
  ms: number | null;
  receivedAt: number;
  format: (ms: number | null) => string;
  sign?: 1 | -1;
}) {
  const now = useNow();
  const elapsed = Math.max(0, now - props.receivedAt);
  const ms = props.ms === null ? null : props.ms + (props.sign ?? 1) * elapsed;
  return <span class="ticking">{props.format(ms)}</span>;
}

export function age(ms: number | null): string {
  if (ms === null) return 'never';
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  return `${Math.floor(s / 3600)}h ago`;
}

/** Time left, e.g. until a certificate expires. */
export function days(ms: number | null): string {
  if (ms === null) return '—';
  if (ms < 0) return 'expired';
  const d = Math.floor(ms / 86_400_000);
  if (d > 0) return `in ${d} day${d === 1 ? '' : 's'}`;
  const h = Math.floor(ms / 3_600_000);
  return h > 0 ? `in ${h} h` : `in ${Math.floor(ms / 60_000)} min`;
}
