import { Command } from 'commander';
import { isthmusVersion } from '../config/version.js';
import { registerServerCommand } from './server-command.js';
import { registerEnvoyCommand } from './envoy-command.js';
import { registerServicesCommand } from './services-command.js';
import { registerConfigCommand } from './config-command.js';
import { registerCaCommand } from './ca-command.js';
import { registerAclCommand } from './acl-command.js';
import { registerPeeringCommand } from './peering-command.js';
import { registerProxyCommands } from './proxy-command.js';
import { registerTroubleshootCommand } from './troubleshoot-command.js';
import { registerDemoCommand } from './demo-command.js';
import { registerMembersCommand } from './members-command.js';
import { registerStoreCommand } from './store-command.js';

/**
 * The `isthmus` command tree. Each command lives in its own `*-command.ts` exporting a
 * `register*Command(program)`; add new ones to `commands` below.
 */
const commands: readonly ((program: Command) => void)[] = [
  registerServerCommand,
  registerEnvoyCommand,
  registerServicesCommand,
  registerConfigCommand,
  registerCaCommand,
  registerAclCommand,
  registerPeeringCommand,
  registerProxyCommands,
  registerTroubleshootCommand,
  registerMembersCommand,
  registerDemoCommand,
  registerStoreCommand,
];

export function buildProgram(): Command {
  const program = new Command('isthmus')
    .description(
      'Envoy xDS control plane for service meshes joined by cluster peering and mesh gateways',
    )
    .version(isthmusVersion(), '-V, --version', 'print the version')
    .helpOption('-h, --help', 'show help')
    .helpCommand(false)
    // Errors are printed once, as one line, by main.ts; these settings are inherited by
    // subcommands.
    .exitOverride()
    .configureOutput({ outputError: () => undefined })
    .showSuggestionAfterError(true);
  for (const register of commands) register(program);
  return program;
}
