#!/usr/bin/env node
/**
 * `reasonq`: dev, serve, worker, intent, enqueue, events, status, cancel,
 * retry, stats, list, workers, migrate. Human-readable output by default, JSON
 * with --json; non-zero exit on failure (1: the operation failed, 2: bad usage
 * or config, in a message that names the flag or variable).
 */
import { Command, CommanderError } from 'commander';
import { ConfigError, ValidationError } from '../errors.js';
import { registerClientCommands } from './client-commands.js';
import { registerMigrateCommand } from './migrate-command.js';
import { registerServerCommands } from './server-commands.js';
import { printError } from './output.js';

const program = new Command();
program
  .name('reasonq')
  .description('A job queue for agent runtimes: intent requests in, intents out.')
  .version(process.env.npm_package_version ?? '0.1.0')
  .showHelpAfterError('(run with --help for usage)')
  // Usage errors come back to us (exit 2) instead of commander exiting with 1; set before the subcommands so they inherit it.
  .exitOverride();

registerServerCommands(program);
registerClientCommands(program);
registerMigrateCommand(program);


program.parseAsync(process.argv).catch((error: unknown) => {
  if (error instanceof CommanderError) {
    // commander has printed the message (or the help/version) already
    process.exitCode = error.exitCode === 0 ? 0 : 2;
    return;
  }
  const json = process.argv.includes('--json');
  printError(error, json);
  process.exitCode = error instanceof ConfigError || error instanceof ValidationError ? 2 : 1;
});
