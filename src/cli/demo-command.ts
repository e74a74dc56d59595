import type { Command } from 'commander';

/** `isthmus demo (owned by the demo work)`: placeholder, filled in by its issue-6 work package. */
export function registerDemoCommand(_program: Command): void {}
