import { pino, type Logger, type LevelWithSilent } from 'pino';
import { RepeatLimiter, clipError, clipFields, clipText, logLimits } from './log-limits.js';

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

/** pino's numeric level of `warn`: lines at this level and above are rate-limited. */
const warnLevel = 40;

/**
 * Structured JSON logs on stdout (one object per line). Secrets never reach a log line: callers log
 * identifiers, never token or key material, and the redact list is a second line of defence.
 *
 * Every line is bounded (src/log-limits.ts): string fields are cut at 256 characters, messages at
 * 1 KiB, stacks at 4 KiB. Warnings and errors with the same message are written at most 20 times a
 * second; the rest are counted and reported once a second as `dropped N similar messages`.
 */
export function createLogger(
  level: LevelWithSilent = 'info',
  destination?: pino.DestinationStream,
): Logger {
  const limiter = new RepeatLimiter();
  return pino(
    {
      level,
      base: { svc: 'isthmus' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: redactPaths, censor: '[redacted]' },
      formatters: { log: (fields) => clipFields(fields) as Record<string, unknown> },
      serializers: { err: (e: Error) => clipError(pino.stdSerializers.err(e)) },
      hooks: {
        logMethod(args, method, levelNumber) {
          const clipped = args.map((a) =>
            typeof a === 'string' ? clipText(a, logLimits.messageChars) : a,
          ) as typeof args;
          if (levelNumber < warnLevel) return method.apply(this, clipped);
          const msg = clipped.find((a): a is string => typeof a === 'string') ?? '';
          const report = (dropped: number) =>
            method.call(
              this,
              { dropped },
              `dropped ${dropped} similar messages: ${clipText(msg, logLimits.fieldChars)}`,
            );
          if (limiter.admit(`${levelNumber} ${msg}`, report)) method.apply(this, clipped);
        },
      },
    },
    destination ?? pino.destination({ fd: 1, sync: false }),
  );
}

/** A logger that drops everything, for unit tests and library use. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
