import type { Command } from 'commander';
import { IsthmusError } from '../errors.js';
import { type ServerConfig, loadServerConfig, serverSettings } from '../config/index.js';
import { createLogger } from '../log.js';
import { onShutdownSignal } from './shutdown.js';

/** `isthmus server`: runs the HTTP API and the xDS server until SIGTERM or SIGINT. */
export function registerServerCommand(program: Command): void {
  const cmd = program
    .command('server')
    .description('run the isthmus server (HTTP API and xDS); stops gracefully on SIGTERM/SIGINT');
  for (const spec of Object.values(serverSettings)) {
    const flag = spec.valueName === '' ? spec.flag : `${spec.flag} <${spec.valueName}>`;
    const description = `${spec.description} (env ${spec.env}, file key ${spec.fileKey}, default ${spec.defaultText || 'none'})`;
    if (spec.repeatable) cmd.option(flag, description, joinRepeated);
    else cmd.option(flag, description);
  }
  cmd.option(
    '--config <FILE>',
    'YAML or JSON config file with the snake_case keys above (flags > env > file > defaults)',
  );
  cmd.action(async (flags: Record<string, unknown>, command: Command) => {
    const code = await runServer(configOrUsageError(flags, command));
    process.exit(code);
  });
}

/** A repeated flag's values, comma-joined as the flag's own list syntax. */
function joinRepeated(value: string, previous: string | undefined): string {
  return previous === undefined ? value : `${previous},${value}`;
}

function configOrUsageError(flags: Record<string, unknown>, command: Command): ServerConfig {
  try {
    const configFile = typeof flags.config === 'string' ? flags.config : undefined;
    return loadServerConfig({ flags, env: process.env, configFile });
  } catch (err) {
    if (!(err instanceof IsthmusError)) throw err;
    // command.error throws (exitOverride) a CommanderError that main.ts prints and maps to exit 2.
    return command.error(err.message, { exitCode: 2, code: 'isthmus.config' });
  }
}

/**
 * Signals are handled from before the start: a SIGTERM while the server is still starting (a
 * restore can take seconds) stops it once started, within the same grace period, and exits 0.
 */
async function runServer(config: ServerConfig): Promise<number> {
  const logger = createLogger(config.logLevel);
  // Loaded lazily so `isthmus --help` does not pay for fastify, gRPC and LMDB.
  const starting = import('../server.js').then(({ startServer }) =>
    startServer(config, { logger }),
  );
  const exitCode = onShutdownSignal({ logger, stop: async () => (await starting).stop() });
  await starting;
  return exitCode;
}
