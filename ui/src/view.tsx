import type { ComponentChildren } from 'preact';
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

export function age(ms: number | null): string {
  if (ms === null) return 'never';
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  return `${Math.floor(s / 3600)}h ago`;
}

export function days(ms: number): string {
  const d = Math.floor(ms / 86_400_000);
  return d < 0 ? 'expired' : d === 0 ? 'today' : `in ${d} days`;
}
