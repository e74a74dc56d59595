import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

export const logLevels: readonly LevelWithSilent[] = [
  'fatal',
  'error',
  'warn',
  'info',
  'debug',
  'trace',
  'silent',
];

/**
 * Field names that hold secrets wherever they appear in the code or on the wire: tokens (HTTP API,
 * proxy SecretID, peering token), peering secrets, private keys, auth headers.
 */
const secretFields = [
  'token',
  'secret',
  'httpToken',
  'SecretID',
  'secretId',
  'PeeringToken',
  'peeringToken',
  'EstablishmentSecret',
  'establishmentSecret',
  'streamSecret',
  'privateKey',
  'keyPem',
  'authorization',
  'x-isthmus-token',
];
const redactPaths = secretFields.flatMap((f) =>
  /^\w+$/.test(f) ? [f, `*.${f}`] : [`["${f}"]`, `*["${f}"]`],
);

/**
 * Structured JSON logs on stdout (one object per line). Secrets never reach a log line: callers log
 * identifiers, never token or key material, and the redact list is a second line of defence.
 */
export function createLogger(
  level: LevelWithSilent = 'info',
  destination?: pino.DestinationStream,
): Logger {
  return pino(
    {
      level,
      base: { svc: 'isthmus' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: redactPaths, censor: '[redacted]' },
    },
    destination ?? pino.destination({ fd: 1, sync: false }),
  );
}

/** A logger that drops everything, for unit tests and library use. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
