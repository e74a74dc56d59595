import { type Command, Option } from 'commander';
import { formatHostPort, parseHostPort } from '../config/host-port.js';
import { IsthmusError, errorCodeOfHttpStatus } from '../errors.js';

/**
 * What CLI commands over the HTTP API share: the `--http-addr`, `--token` and `--format` options
 * and a small JSON client whose errors are one line (`<field path>: <what is allowed>` for 400s).
 */
export type OutputFormat = 'pretty' | 'json';

export interface ApiOptions {
  readonly httpAddr: string;
  readonly token?: string | undefined;
  readonly format: OutputFormat;
}

const requestTimeoutMs = 30_000;

/** Adds the API options to a leaf command (call before `.action`). */
export function withApiOptions(cmd: Command): Command {
  return cmd
    .addOption(
      new Option('--http-addr <HOST:PORT>', 'isthmus HTTP API address (or http://HOST:PORT)')
        .env('ISTHMUS_HTTP_ADDR')
        .default('127.0.0.1:8500'),
    )
    .addOption(
      new Option('--token <TOKEN>', "HTTP API token (the server's --http-token)").env(
        'ISTHMUS_HTTP_TOKEN',
      ),
    )
    .addOption(
      new Option('--format <FORMAT>', 'output format')
        .choices(['pretty', 'json'])
        .default('pretty'),
    );
}

/** The client for a command's options; a malformed --http-addr is a usage error (exit 2). */
export function apiClientFor(cmd: Command): { client: ApiClient; format: OutputFormat } {
  const opts = cmd.opts<ApiOptions>();
  const base = baseUrl(opts.httpAddr);
  if (!base)
    return cmd.error(
      `--http-addr: ${JSON.stringify(opts.httpAddr)} is not HOST:PORT or http(s)://HOST:PORT`,
      { exitCode: 2, code: 'isthmus.usage' },
    );
  return { client: new ApiClient(base, opts.token || undefined), format: opts.format };
}

function baseUrl(addr: string): string | undefined {
  if (/^https?:\/\//.test(addr)) {
    try {
      return new URL(addr).origin;
    } catch {
      return undefined;
    }
  }
  const hp = parseHostPort(addr);
  return hp && `http://${formatHostPort(hp)}`;
}

export class ApiClient {
  constructor(
    readonly baseUrl: string,
    private readonly token?: string,
  ) {}

  get<T = unknown>(path: string): Promise<T> {
    return this.request<T>('GET', path);
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

  /** Sends JSON, resolves with the parsed JSON answer (undefined for an empty one); throws IsthmusError. */
  async request<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
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
    return (text === '' ? undefined : JSON.parse(text)) as T;
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
