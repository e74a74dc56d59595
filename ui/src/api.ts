import type { UiChangeJson, UiTopic } from '../../src/api/ui-json.js';

/**
 * The UI's client of the isthmus HTTP API: the same routes and the same token as the CLI. The
 * token lives in sessionStorage (gone with the tab) and travels as `Authorization: Bearer`.
 */
const tokenKey = 'isthmus-http-token';

export function savedToken(): string {
  return sessionStorage.getItem(tokenKey) ?? '';
}

export function saveToken(token: string): void {
  if (token) sessionStorage.setItem(tokenKey, token);
  else sessionStorage.removeItem(tokenKey);
}

/** A refusal: `needsToken` when no valid token was sent, else the scope the route needs. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly needsToken: boolean,
    readonly scope?: string,
  ) {
    super(message);
  }
}

function headers(): HeadersInit {
  const token = savedToken();
  return token ? { authorization: `Bearer ${token}` } : {};
}

export async function apiGet<T>(path: string, signal?: AbortSignal): Promise<T> {
  const res = await fetch(path, { headers: headers(), ...(signal && { signal }) });
  const body = (await res.json().catch(() => ({}))) as { error?: string; scope?: string };
  if (res.ok) return body as T;
  const message = body.error ?? `${res.status} ${res.statusText}`;
  const needsToken = res.status === 403 && body.scope === undefined;
  throw new ApiError(message, res.status, needsToken, body.scope);
}

export type Topic = UiTopic;
type Listener = (topics: readonly Topic[]) => void;
const listeners = new Set<Listener>();

/** Calls `listener` with the topics of every change the server reports; returns the unsubscribe. */
export function onChange(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/**
 * Follows `GET /v1/ui/events` for as long as the page is open, reconnecting a second after it
 * drops. It is read with fetch, not EventSource, so it carries the token like every other call.
 * `onStatus` reports whether the stream is up.
 */
export function followEvents(onStatus: (live: boolean) => void): () => void {
  let stopped = false;
  let abort = new AbortController();
  const run = async () => {
    while (!stopped) {
      try {
        const res = await fetch('/v1/ui/events', { headers: headers(), signal: abort.signal });
        if (!res.ok || !res.body) throw new Error(`events: ${res.status}`);
        onStatus(true);
        // Whatever changed while the stream was down: every page refetches once.
        for (const l of listeners) l(['catalog', 'peerings', 'ca', 'proxies']);
        await readFrames(res.body, (event, data) => {
          if (event !== 'change') return;
          const { topics } = JSON.parse(data) as UiChangeJson;
          for (const l of listeners) l(topics);
        });
      } catch {
        // Dropped, refused or aborted: wait and try again (stopped ends the loop).
      }
      onStatus(false);
      if (!stopped) await new Promise((r) => setTimeout(r, 1000));
      abort = new AbortController();
    }
  };
  void run();
  return () => {
    stopped = true;
    abort.abort();
  };
}

/** Splits a text/event-stream body into `(event, data)` frames. */
async function readFrames(
  body: ReadableStream<Uint8Array>,
  onFrame: (event: string, data: string) => void,
): Promise<void> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end = buffer.indexOf('\n\n');
    while (end >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = 'message';
      const data: string[] = [];
      for (const line of frame.split('\n')) {
        if (line.startsWith('event: ')) event = line.slice(7);
        else if (line.startsWith('data: ')) data.push(line.slice(6));
      }
      if (data.length > 0) onFrame(event, data.join('\n'));
      end = buffer.indexOf('\n\n');
    }
  }
}
