import { IsthmusError } from '../errors.js';
import { type Result, err, ok } from '../result.js';
import { readConfigFile } from './config-file.js';
import { httpExposureProblem } from './http-access.js';
import { xdsPlaintextProblem } from './xds-access.js';
import { federationProblem } from './federation-role.js';
import { type ServerConfig, type SettingSpec, serverSettings, settingKeys } from './settings.js';

export type { ServerConfig } from './settings.js';

export interface ConfigSources {
  /** Commander's option values (camelCase keys); undefined = flag not given. */
  readonly flags: Readonly<Record<string, unknown>>;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Path of a YAML or JSON config file (`--config`). */
  readonly configFile?: string | undefined;
}

export type ConfigResult = Result<ServerConfig, readonly string[]>;

interface RawSetting {
  readonly raw: unknown;
  /** How the user names where the value came from, e.g. `--http-addr` or `ISTHMUS_HTTP_ADDR`. */
  readonly origin: string;
}

/**
 * Resolves every setting with precedence flag > environment > config file > default, and collects
 * every error (each naming the flag, variable or file key it is about) instead of stopping at the
 * first.
 */
export function resolveServerConfig(sources: ConfigSources): ConfigResult {
  const fileKeys = settingKeys.map((k) => serverSettings[k].fileKey);
  const file =
    sources.configFile === undefined ? undefined : readConfigFile(sources.configFile, fileKeys);
  if (file && !file.ok) return file;
  const fileValues = file?.value ?? {};
  const errors: string[] = [];
  const config = resolveEach(<K extends keyof ServerConfig>(key: K): ServerConfig[K] => {
    const spec: SettingSpec<ServerConfig[K]> = serverSettings[key];
    const picked = pick(spec, sources, fileValues);
    const parsed = spec.parse(picked.raw);
    if (parsed.ok) return parsed.value;
    errors.push(`${picked.origin}: ${parsed.error}`);
    return spec.defaultValue; // never used: the errors are the result
  });
  if (errors.length === 0)
    for (const problem of [
      httpExposureProblem(config),
      xdsPlaintextProblem(config),
      federationProblem(config),
    ])
      if (problem) errors.push(problem);
  return errors.length > 0 ? err(errors) : ok(config);
}

/** Every setting, resolved in the order of the settings table (the order errors are listed in). */
function resolveEach(
  resolve: <K extends keyof ServerConfig>(key: K) => ServerConfig[K],
): ServerConfig {
  return {
    dataDir: resolve('dataDir'),
    store: resolve('store'),
    etcdEndpoints: resolve('etcdEndpoints'),
    etcdPrefix: resolve('etcdPrefix'),
    etcdCaFile: resolve('etcdCaFile'),
    etcdCertFile: resolve('etcdCertFile'),
    etcdKeyFile: resolve('etcdKeyFile'),
    etcdUsername: resolve('etcdUsername'),
    etcdPasswordFile: resolve('etcdPasswordFile'),
    datacenter: resolve('datacenter'),
    httpAddr: resolve('httpAddr'),
    xdsAddr: resolve('xdsAddr'),
    peeringAddr: resolve('peeringAddr'),
    logLevel: resolve('logLevel'),
    xdsMaxStreams: resolve('xdsMaxStreams'),
    xdsMaxRequestBytes: resolve('xdsMaxRequestBytes'),
    xdsMaxStreamsPerToken: resolve('xdsMaxStreamsPerToken'),
    xdsAdmissionTimeoutMs: resolve('xdsAdmissionTimeoutMs'),
    coalesceMs: resolve('coalesceMs'),
    caRotationPhaseMs: resolve('caRotationPhaseMs'),
    xdsAuth: resolve('xdsAuth'),
    httpToken: resolve('httpToken'),
    insecureHttp: resolve('insecureHttp'),
    xdsTlsSan: resolve('xdsTlsSan'),
    xdsPlaintext: resolve('xdsPlaintext'),
    xdsPlaintextAllowRemote: resolve('xdsPlaintextAllowRemote'),
    advertiseAddr: resolve('advertiseAddr'),
    nodeName: resolve('nodeName'),
    peeringHeartbeatMs: resolve('peeringHeartbeatMs'),
    peeringHeartbeatTimeoutMs: resolve('peeringHeartbeatTimeoutMs'),
    httpMaxBodyBytes: resolve('httpMaxBodyBytes'),
    httpMaxConnections: resolve('httpMaxConnections'),
    primaryDatacenter: resolve('primaryDatacenter'),
    primaryGateways: resolve('primaryGateways'),
    federationAddr: resolve('federationAddr'),
    federationSecretFile: resolve('federationSecretFile'),
  };
}

function pick<T>(
  spec: SettingSpec<T>,
  sources: ConfigSources,
  fileValues: Readonly<Record<string, unknown>>,
): RawSetting {
  const flag = sources.flags[spec.key];
  if (flag !== undefined) return { raw: flag, origin: spec.flag };
  const env = sources.env[spec.env];
  if (env !== undefined && env !== '') return { raw: env, origin: spec.env };
  if (fileValues[spec.fileKey] !== undefined) {
    return { raw: fileValues[spec.fileKey], origin: `${spec.fileKey} in "${sources.configFile}"` };
  }
  return { raw: spec.defaultText, origin: `default of ${spec.flag}` };
}

/**
 * Like `resolveServerConfig`, but throws one `invalid_argument` IsthmusError listing every problem.
 */
export function loadServerConfig(sources: ConfigSources): ServerConfig {
  const result = resolveServerConfig(sources);
  if (result.ok) return result.value;
  throw new IsthmusError('invalid_argument', result.error.join('; '));
}
