import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { type Result, err, ok } from '../result.js';

/** The raw settings of a config file (snake_case keys), or every problem found reading it. */
export type ConfigFileResult = Result<Readonly<Record<string, unknown>>, readonly string[]>;

const formats: Readonly<Record<string, 'yaml' | 'json'>> = {
  '.yaml': 'yaml',
  '.yml': 'yaml',
  '.json': 'json',
};

/**
 * Reads a YAML or JSON config file (chosen by extension). Keys outside `allowedKeys` are errors:
 * a misspelt setting must not silently fall back to its default.
 */
export function readConfigFile(path: string, allowedKeys: readonly string[]): ConfigFileResult {
  const format = formats[extname(path).toLowerCase()];
  if (!format) return fail(`--config: "${path}" must end in .yaml, .yml or .json`);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    return fail(
      `--config: cannot read "${path}": ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
    );
  }
  let doc: unknown;
  try {
    doc = format === 'json' ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    return fail(`--config: "${path}" is not valid ${format.toUpperCase()}: ${firstLine(err)}`);
  }
  return checkKeys(path, doc ?? {}, allowedKeys);
}

function checkKeys(path: string, doc: unknown, allowedKeys: readonly string[]): ConfigFileResult {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    return fail(`--config: "${path}" must hold a mapping of settings`);
  }
  const unknown = Object.keys(doc).filter((k) => !allowedKeys.includes(k));
  if (unknown.length > 0) {
    return err(
      unknown.map(
        (k) => `config file "${path}": unknown key "${k}" (allowed: ${allowedKeys.join(', ')})`,
      ),
    );
  }
  return ok(doc as Record<string, unknown>);
}

function fail(error: string): ConfigFileResult {
  return err([error]);
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0]!;
}
