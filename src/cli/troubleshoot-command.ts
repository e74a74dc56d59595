import type { Command } from 'commander';

/** `isthmus troubleshoot peering / proxy (owned by the troubleshoot work)`: placeholder, filled in by its issue-6 work package. */
export function registerTroubleshootCommand(_program: Command): void {}
