import { useEffect, useState } from 'preact/hooks';
import { ApiError, apiGet, onChange, type Topic } from './api.js';

export interface ApiState<T> {
  readonly data: T | undefined;
  readonly error: ApiError | Error | undefined;
  /**
   * `performance.now()` when `data` arrived: the server's relative times (an age, a time left) are
   * as of then, and `Age` counts on from it without asking the server again.
   */
  readonly receivedAt: number;
}

/**
 * Fetches `path` now and again whenever the server reports a change of one of `topics`; the
 * previous answer stays on screen while the next one loads. A 403 that needs a token goes to
 * `onNeedsToken` (the app shows the token prompt).
 */
export function useApi<T>(
  path: string | undefined,
  topics: readonly Topic[],
  onNeedsToken: () => void,
): ApiState<T> {
  const [state, setState] = useState<ApiState<T>>({
    data: undefined,
    error: undefined,
    receivedAt: 0,
  });
  useEffect(() => {
    if (!path) return;
    let current = new AbortController();
    const load = () => {
      current.abort();
      current = new AbortController();
      apiGet<T>(path, current.signal).then(
        (data) => setState({ data, error: undefined, receivedAt: performance.now() }),
        (error: Error) => {
          if (error.name === 'AbortError') return;
          if (error instanceof ApiError && error.needsToken) onNeedsToken();
          setState((s) => ({ ...s, error }));
        },
      );
    };
    load();
    const off = onChange((changed) => {
      if (changed.some((t) => topics.includes(t))) load();
    });
    return () => {
      off();
      current.abort();
    };
  }, [path, topics.join(), onNeedsToken]);
  return state;
}
