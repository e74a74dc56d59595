import type { Command } from 'commander';

/** `isthmus proxy-status and proxy-config (owned by the proxy-status work)`: placeholder, filled in by its issue-6 work package. */
export function registerProxyCommands(_program: Command): void {}
