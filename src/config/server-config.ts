import { IsthmusError } from '../errors.js';
import { readConfigFile } from './config-file.js';
import { httpExposureProblem } from './http-access.js';
import { type ServerConfig, type SettingSpec, serverSettings, settingKeys } from './settings.js';

export type { ServerConfig } from './settings.js';

export interface ConfigSources {
  /** Commander's option values (camelCase keys); undefined = flag not given. */
  readonly flags: Readonly<Record<string, unknown>>;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Path of a YAML or JSON config file (`--config`). */
  readonly configFile?: string | undefined;
}

export type ConfigResult =
  | { readonly ok: true; readonly config: ServerConfig }
  | { readonly ok: false; readonly errors: readonly string[] };

interface RawSetting {
  readonly raw: unknown;
  /** How the user names where the value came from, e.g. `--http-addr` or `ISTHMUS_HTTP_ADDR`. */
  readonly origin: string;
}

/**
 * Resolves every setting with precedence flag > environment > config file > default, and collects
 * every error (each naming the flag, variable or file key it is about) instead of stopping at the first.
 */
export function resolveServerConfig(sources: ConfigSources): ConfigResult {
  const fileKeys = settingKeys.map((k) => serverSettings[k].fileKey);
  const file =
    sources.configFile === undefined ? undefined : readConfigFile(sources.configFile, fileKeys);
  if (file && !file.ok) return { ok: false, errors: file.errors };
  const fileValues = file?.values ?? {};
  const errors: string[] = [];
  const config: Record<string, unknown> = {};
  for (const key of settingKeys) {
    const spec: SettingSpec<unknown> = serverSettings[key];
    const picked = pick(spec, sources, fileValues);
    if (!picked) continue;
    const parsed = spec.parse(picked.raw);
    if (parsed.ok) config[key] = parsed.value;
    else errors.push(`${picked.origin}: ${parsed.problem}`);
  }
  const exposure =
    errors.length > 0 ? undefined : httpExposureProblem(config as unknown as ServerConfig);
  if (exposure) errors.push(exposure);
  return errors.length > 0
    ? { ok: false, errors }
    : { ok: true, config: config as unknown as ServerConfig };
}

function pick(
  spec: SettingSpec<unknown>,
  sources: ConfigSources,
  fileValues: Readonly<Record<string, unknown>>,
): RawSetting | undefined {
  const flag = sources.flags[spec.key];
  if (flag !== undefined) return { raw: flag, origin: spec.flag };
  const env = sources.env[spec.env];
  if (env !== undefined && env !== '') return { raw: env, origin: spec.env };
  if (fileValues[spec.fileKey] !== undefined) {
    return { raw: fileValues[spec.fileKey], origin: `${spec.fileKey} in "${sources.configFile}"` };
  }
  return { raw: spec.defaultText, origin: `default of ${spec.flag}` };
}

/** Like `resolveServerConfig`, but throws one `invalid_argument` IsthmusError listing every problem. */
export function loadServerConfig(sources: ConfigSources): ServerConfig {
  const result = resolveServerConfig(sources);
  if (result.ok) return result.config;
  throw new IsthmusError('invalid_argument', result.errors.join('; '));
}
