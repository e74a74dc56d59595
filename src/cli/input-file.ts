import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { IsthmusError } from '../errors.js';

/**
 * Reads a JSON or YAML document from `FILE`, or from stdin for `-`. JSON is tried first when the
 * text looks like JSON, so its errors read as JSON errors.
 */
export async function readDocument(file: string): Promise<unknown> {
  const name = file === '-' ? 'stdin' : `"${file}"`;
  const text = file === '-' ? await readStdin() : readFile(file);
  if (text.trim() === '') throw new IsthmusError('invalid_argument', `${name} is empty`);
  const looksJson = /^\s*[{[]/.test(text);
  try {
    return looksJson ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    const first = (err instanceof Error ? err.message : String(err)).split('\n')[0];
    throw new IsthmusError(
      'invalid_argument',
      `${name} is not valid ${looksJson ? 'JSON' : 'YAML'}: ${first}`,
    );
  }
}

function readFile(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new IsthmusError(
      'invalid_argument',
      `cannot read "${file}": ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
    );
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
