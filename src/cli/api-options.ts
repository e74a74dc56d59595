import { type Command, Option } from 'commander';
import { ApiClient } from '../api/client.js';
import { formatHostPort, parseHostPort } from '../config/host-port.js';

/**
 * What CLI commands over the HTTP API share: the `--http-addr`, `--token` and `--format` options
 * and the API client they make from them (`src/api/client.ts`).
 */
export type OutputFormat = 'pretty' | 'json';

export interface ApiOptions {
  readonly httpAddr: string;
  readonly token?: string | undefined;
  readonly format: OutputFormat;
}

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
