#!/usr/bin/env node
// jobbers-cleaner: prunes task state; cron friendly.
import { Command } from 'commander';

const program = new Command('jobbers-cleaner')
  .description('Prune Jobbers task state by queue, task type, state and age. Safe to run from cron.')
  .option('--queue <queue...>', 'only these queues (repeatable)')
  .option('--task <task...>', 'only these task types (repeatable)')
  .option('--state <state...>', 'completed | failed | waiting | delayed (repeatable)')
  .option('--before <iso>', 'only tasks submitted before this time')
  .option('--older-than <duration>', 'only tasks submitted longer ago than this, e.g. 30s, 15m, 7d')
  .option('--dry-run', 'print what would be removed, remove nothing')
  .option('--limit <n>', 'remove at most this many tasks')
  .option('--json', 'print a JSON summary')
  .parse();

program.error('jobbers-cleaner: pruning is not implemented yet', { exitCode: 2 });
