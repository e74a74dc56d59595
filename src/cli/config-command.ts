import type { Command } from 'commander';
import { apiClientFor, withApiOptions } from './api-options.js';
import { readDocument } from './input-file.js';
import { print, printTable } from './output.js';

/** `isthmus config write|read|list|delete`: config entries over the HTTP API. */
export function registerConfigCommand(program: Command): void {
  const config = program
    .command('config')
    .description('write, read, list and delete config entries (HTTP API)');
  withApiOptions(
    config
      .command('write')
      .argument('<FILE|->', 'config entry with Kind and Name, JSON or YAML (- = stdin)'),
  )
    .description('create or replace a config entry')
    .action(async (file: string, _opts: unknown, cmd: Command) => {
      const { client, format } = apiClientFor(cmd);
      const body = await readDocument(file);
      await client.put('/v1/config', body);
      const { Kind, Name } = (body ?? {}) as { Kind?: unknown; Name?: unknown };
      const name = `${String(Kind)}/${String(Name ?? fixedNames[String(Kind)])}`;
      print(format === 'json' ? { Written: name } : `Config entry written: ${name}`);
    });
  withApiOptions(config.command('read').argument('<KIND>').argument('<NAME>'))
    .description('print one config entry')
    .action(async (kind: string, name: string, _opts: unknown, cmd: Command) => {
      const { client } = apiClientFor(cmd);
      print(await client.get(`/v1/config/${encodeURIComponent(kind)}/${encodeURIComponent(name)}`));
    });
  withApiOptions(config.command('list').argument('<KIND>'))
    .description('list the config entries of a kind')
    .action(async (kind: string, _opts: unknown, cmd: Command) => {
      const { client, format } = apiClientFor(cmd);
      const entries = await client.get<{ Name: string; ModifyIndex: number }[]>(
        `/v1/config/${encodeURIComponent(kind)}`,
      );
      if (format === 'json') print(entries);
      else if (entries.length === 0) print(`No ${kind} config entries.`);
      else
        printTable(
          ['NAME', 'MODIFY INDEX'],
          entries.map((e) => [e.Name, String(e.ModifyIndex)]),
        );
    });
  withApiOptions(config.command('delete').argument('<KIND>').argument('<NAME>'))
    .description('delete a config entry')
    .action(async (kind: string, name: string, _opts: unknown, cmd: Command) => {
      const { client, format } = apiClientFor(cmd);
      await client.delete(`/v1/config/${encodeURIComponent(kind)}/${encodeURIComponent(name)}`);
      print(
        format === 'json'
          ? { Deleted: `${kind}/${name}` }
          : `Config entry deleted: ${kind}/${name}`,
      );
    });
}

/** Kinds whose only entry has a fixed name, which the body may leave out. */
const fixedNames: Readonly<Record<string, string>> = { 'proxy-defaults': 'global', mesh: 'mesh' };
