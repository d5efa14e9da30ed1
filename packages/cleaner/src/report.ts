// What a run did: counts per queue, task type and state, as JSON and as a table for people.
import type { CleanerState } from './options.js';

export interface TallyRow {
  queue: string;
  task: string;
  state: CleanerState;
  count: number;
}

export interface TallyJson {
  total: number;
  byQueue: Record<string, number>;
  byTask: Record<string, number>;
  byState: Record<string, number>;
  rows: TallyRow[];
}

export class Tally {
  private readonly counts = new Map<string, TallyRow>();
  total = 0;

  add(queue: string, task: string, state: CleanerState, count = 1): void {
    if (count === 0) return;
    const key = `${queue}\u0000${task}\u0000${state}`;
    const row = this.counts.get(key);
    if (row) row.count += count;
    else this.counts.set(key, { queue, task, state, count });
    this.total += count;
  }

  rows(): TallyRow[] {
    return [...this.counts.values()].sort(
      (a, b) =>
        a.queue.localeCompare(b.queue) || a.task.localeCompare(b.task) || a.state.localeCompare(b.state),
    );
  }

  toJSON(): TallyJson {
    const byQueue: Record<string, number> = {};
    const byTask: Record<string, number> = {};
    const byState: Record<string, number> = {};
    const rows = this.rows();
    for (const { queue, task, state, count } of rows) {
      byQueue[queue] = (byQueue[queue] ?? 0) + count;
      byTask[task] = (byTask[task] ?? 0) + count;
      byState[state] = (byState[state] ?? 0) + count;
    }
    return { total: this.total, byQueue, byTask, byState, rows };
  }
}

export interface CleanerReport {
  dryRun: boolean;
  filters: {
    queues: string[] | null;
    tasks: string[] | null;
    states: CleanerState[];
    submittedBefore: string | null;
    limit: number | null;
  };
  /** The queues visited. */
  queues: string[];
  /** Entries read from the state sets and lists. */
  scanned: number;
  /** Tasks that matched every filter (in a dry run: what would be removed). */
  matched: TallyJson;
  removed: TallyJson;
  /** Matched but not removed: a worker took them meanwhile, or another remover got there first. */
  skipped: { active: number; gone: number; kept: number };
  limitReached: boolean;
  interrupted: boolean;
  startedAt: string;
  durationMs: number;
  jobsPerSecond: number;
  /** False when the final metrics flush could not reach Redis (the run then exits 1). */
  metricsWritten: boolean;
  error?: { message: string };
}

export function formatSummary(report: CleanerReport): string {
  const tally = report.dryRun ? report.matched : report.removed;
  const seconds = (report.durationMs / 1000).toFixed(1);
  const where = plural(report.queues.length, 'queue');
  const lines: string[] = [];
  if (report.dryRun) {
    lines.push(
      `Dry run: would remove ${plural(tally.total, 'task')} from ${where} (scanned ${report.scanned}); nothing removed.`,
    );
  } else {
    lines.push(
      `Removed ${plural(tally.total, 'task')} from ${where} in ${seconds} s (scanned ${report.scanned}).`,
    );
  }
  if (tally.rows.length > 0) lines.push(...table(tally.rows, report.dryRun ? 'would remove' : 'removed'));
  const { active, gone, kept } = report.skipped;
  if (active + gone + kept > 0) {
    lines.push(
      `Skipped ${active} taken by a worker meanwhile, ${gone} already removed by someone else` +
        (kept > 0 ? `, ${kept} refused by BullMQ (job scheduler jobs)` : '') +
        '.',
    );
  }
  if (report.limitReached) lines.push(`Stopped at --limit ${report.filters.limit}.`);
  if (report.interrupted) lines.push('Interrupted: stopped after the batch in progress.');
  if (report.error) lines.push(`Stopped by an error: ${report.error.message}`);
  return `${lines.join('\n')}\n`;
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}

function table(rows: TallyRow[], countHeader: string): string[] {
  const header = ['queue', 'task', 'state', countHeader];
  const cells = rows.map((r) => [r.queue, r.task, r.state, String(r.count)]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) =>
    `  ${c
      .map((v, i) => (i === c.length - 1 ? v.padStart(widths[i]!) : v.padEnd(widths[i]!)))
      .join('  ')}`.trimEnd();
  return [line(header), ...cells.map(line)];
}
