import { IsthmusError, errorCodeOfHttpStatus } from '../errors.js';

const requestTimeoutMs = 30_000;

/**
 * A small JSON client of the HTTP API (the CLI's and `isthmus demo`'s) whose errors are one line
 * (`<field path>: <what is allowed>` for 400s).
 */
export class ApiClient {
  constructor(
    readonly baseUrl: string,
    private readonly token?: string,
  ) {}

  get<T = unknown>(path: string): Promise<T> {
    return this.request<T>('GET', path);
  }

  /** GET, with the answer's headers (e.g. which servers of the cluster did not answer). */
  async getWithHeaders<T = unknown>(path: string): Promise<{ body: T; headers: Headers }> {
    const res = await this.send('GET', path);
    return { body: res.body as T, headers: res.headers };
  }

  put<T = unknown>(path: string, body?: unknown): Promise<T> {
    return this.request<T>('PUT', path, body);
  }

  post<T = unknown>(path: string, body?: unknown): Promise<T> {
    return this.request<T>('POST', path, body);
  }

  delete<T = unknown>(path: string): Promise<T> {
    return this.request<T>('DELETE', path);
  }

  /**
   * Sends JSON, resolves with the parsed JSON answer (undefined for an empty one); throws
   * IsthmusError.
   */
  async request<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    return (await this.send(method, path, body)).body as T;
  }

  private async send(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ body: unknown; headers: Headers }> {
    const headers: Record<string, string> = {};
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    let res: Response;
    try {
      const init: RequestInit = { method, headers, signal: AbortSignal.timeout(requestTimeoutMs) };
      if (body !== undefined) init.body = JSON.stringify(body);
      res = await fetch(this.baseUrl + path, init);
    } catch (err) {
      throw new IsthmusError(
        'unavailable',
        `cannot reach the isthmus HTTP API at ${this.baseUrl}: ${causeOf(err)}`,
      );
    }
    const text = await res.text();
    if (!res.ok) throw apiError(res.status, text);
    return { body: text === '' ? undefined : JSON.parse(text), headers: res.headers };
  }
}

function apiError(status: number, text: string): IsthmusError {
  let error = text.trim() || `HTTP ${status}`;
  let field: string | undefined;
  try {
    const body = JSON.parse(text) as { error?: unknown; field?: unknown };
    if (typeof body.error === 'string') error = body.error;
    if (typeof body.field === 'string' && body.field !== '') field = body.field;
  } catch {
    // not JSON: keep the text
  }
  const message = field && !error.startsWith(field) ? `${field}: ${error}` : error;
  return new IsthmusError(errorCodeOfHttpStatus(status), `${message} (HTTP ${status})`, field);
}

function causeOf(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  if (cause?.code) return cause.code;
  if (err instanceof Error && err.name === 'TimeoutError')
    return `no answer within ${requestTimeoutMs / 1000} s`;
  return cause?.message ?? (err instanceof Error ? err.message : String(err));
}
