// The lifecycle exporter's own cost, apart from any worker: a prefill and a drain are recorded once,
// then replayed to a fresh exporter again and again. Each replay measures the CPU the exporter's
// process and redis-server spend applying the events, per job. Unlike drain throughput, nothing
// else runs while it is measured, so the figure moves little from run to run: it is the one to
// compare when changing the exporter.
import {
  createRedisConnection,
  type EventStreamReaderKind,
  queueKey,
  roleActivityKey,
  TaskClient,
  waitForRedis,
} from '@jobbers/core';
import type { Redis } from 'ioredis';
import {
  noopTask,
  queue,
  redisCpuSeconds,
  registry,
  roundOrder,
  startJobbers,
  waitForDrain,
  workerConfig,
} from './drain.js';
import { startManagerExporter } from './manager-exporter.js';

export interface ExporterCostSettings {
  redisUrl: string;
  admin: Redis;
  jobs: number;
  concurrency: number;
  repeats: number;
}

/** CPU per job of one replayed phase: the exporter's process and redis-server, in microseconds. */
export interface PhaseCost {
  nodeUs: number;
  redisUs: number;
}

/** How the replaying exporter reads the stream: its production reader, or plain ioredis. */
export const costReaders = ['auto', 'ioredis'] as const satisfies readonly EventStreamReaderKind[];

export interface CostReplay {
  round: number;
  reader: EventStreamReaderKind;
  /** Applying the submissions: `added` and `waiting`, two entries per job. */
  submit: PhaseCost;
  /** Applying the drain: `active` and `completed`, two entries per job. */
  drain: PhaseCost;
  /**
   * How long the exporter took to apply each phase once its entries were all there: its lag when
   * events come faster than it applies them (the most one queue's drain can make it work).
   */
  submitCatchUpMs: number;
  drainCatchUpMs: number;
}

export interface ExporterCostResult {
  jobs: number;
  replays: CostReplay[];
}

// Copies the entries of KEYS[1] from ARGV[1] to ARGV[2] (XRANGE bounds) onto KEYS[2], ids kept.
const copyEntries = `
local rows = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[2])
for _, row in ipairs(rows) do redis.call('XADD', KEYS[2], row[1], unpack(row[2])) end
return #rows`;

// Copies every key under prefix ARGV[1] to the same name under prefix ARGV[2].
const copyPrefix = `
for _, key in ipairs(redis.call('KEYS', ARGV[1] .. '*')) do
  redis.call('COPY', key, ARGV[2] .. string.sub(key, #ARGV[1] + 1), 'REPLACE')
end
return 1`;

const deletePrefix = `
for _, key in ipairs(redis.call('KEYS', ARGV[1] .. '*')) do redis.call('DEL', key) end
return 1`;

/** Microseconds redis-server spent in EVAL so far (the bench's own copying, to leave out). */
async function evalUsec(admin: Redis): Promise<number> {
  const stats = await admin.info('commandstats');
  return Number(/cmdstat_eval:calls=\d+,usec=(\d+)/.exec(stats)?.[1] ?? 0);
}

/**
 * The exporter as jobbers-manager constructs it, but with no reconciliation: BullMQ's lists in a
 * replayed copy are a snapshot taken before the drain, so after the drain they disagree with the
 * events on purpose.
 */
function startExporter(redisUrl: string, prefix: string, streamReader: EventStreamReaderKind = 'auto') {
  return startManagerExporter(redisUrl, prefix, registry, 'bench-exporter-cost', {
    reconcileMs: 3_600_000,
    streamReader,
  });
}

interface Recording {
  /** Prefix of the snapshot: BullMQ's keys after the prefill, the exporter's state before it. */
  snapshot: string;
  /** The whole event stream, prefill and drain. */
  events: string;
  /** The last entry of the prefill. */
  prefillEnd: string;
}

/** Records a prefill and a drain of `jobs` no-op jobs, keeping every stream entry. */
async function record(settings: ExporterCostSettings, connection: Redis): Promise<Recording> {
  const { admin, jobs } = settings;
  const prefix = `bench-cost-${process.pid}`;
  const snapshot = `bench-cost-snapshot-${process.pid}`;
  const events = `bench-cost-events-${process.pid}`;
  const stream = `${queueKey(prefix, queue)}:events`;
  // The exporter takes its position (and the empty bookkeeping) before the first submission.
  await (await startExporter(settings.redisUrl, prefix)).stop();
  const client = new TaskClient({ connection, prefix, registry });
  try {
    for (let done = 0; done < jobs; ) {
      const size = Math.min(1000, jobs - done);
      await client.submitBatch(Array.from({ length: size }, () => ({ task: noopTask.name, params: {} })));
      // BullMQ's Queue writes its stream limit once, when it is created: raise it so that nothing
      // recorded is trimmed (checked below).
      if (done === 0) await admin.hset(`${queueKey(prefix, queue)}:meta`, 'opts.maxLenEvents', 100_000_000);
      done += size;
    }
  } finally {
    await client.close();
  }
  const prefillEnd = (await admin.xrevrange(stream, '+', '-', 'COUNT', 1))[0]?.[0];
  if (!prefillEnd) throw new Error('exporter cost: the prefill wrote no events');
  await admin.eval(copyPrefix, 0, `${prefix}:`, `${snapshot}:`);
  await admin.del(`${queueKey(snapshot, queue)}:events`);
  const stopWorker = await startJobbers(workerConfig(settings, prefix));
  try {
    await waitForDrain(admin, prefix, jobs);
  } finally {
    await stopWorker();
  }
  // Activations carry the worker's role: the replays see it recorded, as a live exporter would.
  await admin.copy(roleActivityKey(prefix, queue), roleActivityKey(snapshot, queue), 'REPLACE');
  await admin.rename(stream, events);
  const info = (await admin.xinfo('STREAM', events)) as unknown[];
  const added = Number(info[info.indexOf('entries-added') + 1]);
  const length = await admin.xlen(events);
  if (length !== added) throw new Error(`exporter cost: ${added - length} recorded events were trimmed`);
  await admin.eval(deletePrefix, 0, `${prefix}:`);
  return { snapshot, events, prefillEnd };
}

/** One replay: a fresh copy of the snapshot, applied by a new exporter phase by phase. */
async function replay(
  settings: ExporterCostSettings,
  recording: Recording,
  round: number,
  reader: EventStreamReaderKind,
): Promise<CostReplay> {
  const { admin, jobs } = settings;
  const prefix = `bench-cost-replay-${process.pid}-${round}-${reader}`;
  const stream = `${queueKey(prefix, queue)}:events`;
  await admin.eval(copyPrefix, 0, `${recording.snapshot}:`, `${prefix}:`);
  // Started and caught up (with nothing: the stream does not exist yet) before anything is measured.
  const { exporter, stop } = await startExporter(settings.redisUrl, prefix, reader);
  try {
    await exporter.waitUntilCaughtUp(30_000);
    const phase = async (from: string, to: string): Promise<PhaseCost & { catchUpMs: number }> => {
      const redisBefore = await redisCpuSeconds(admin);
      const evalBefore = await evalUsec(admin);
      const nodeBefore = process.cpuUsage();
      await admin.eval(copyEntries, 2, recording.events, stream, from, to);
      const copied = Date.now();
      await exporter.waitUntilCaughtUp(120_000);
      const catchUpMs = Date.now() - copied;
      const node = process.cpuUsage(nodeBefore);
      const copying = (await evalUsec(admin)) - evalBefore;
      const redisUs = ((await redisCpuSeconds(admin)) - redisBefore) * 1e6 - copying;
      return { nodeUs: (node.user + node.system) / jobs, redisUs: Math.max(0, redisUs) / jobs, catchUpMs };
    };
    const { catchUpMs: submitCatchUpMs, ...submit } = await phase('-', recording.prefillEnd);
    const { catchUpMs: drainCatchUpMs, ...drain } = await phase(`(${recording.prefillEnd}`, '+');
    return { round, reader, submit, drain, submitCatchUpMs, drainCatchUpMs };
  } finally {
    await stop();
    await admin.eval(deletePrefix, 0, `${prefix}:`);
  }
}

/** Replays alternate the readers (the order rotated each round); `onReplay` sees each as it ends. */
export async function runExporterCostBench(
  settings: ExporterCostSettings,
  onReplay: (replay: CostReplay) => void = () => {},
): Promise<ExporterCostResult> {
  const connection = createRedisConnection(settings.redisUrl, {
    connectionName: 'bench-exporter-cost-record',
  });
  connection.on('error', () => {});
  await waitForRedis(connection, 10_000);
  let recording: Recording | undefined;
  try {
    recording = await record(settings, connection);
    // One replay per reader to warm up (JIT, Redis's allocator), not counted.
    for (const reader of costReaders) await replay(settings, recording, 0, reader);
    const result: ExporterCostResult = { jobs: settings.jobs, replays: [] };
    for (let round = 1; round <= settings.repeats; round++) {
      for (const reader of roundOrder(costReaders, round - 1)) {
        const run = await replay(settings, recording, round, reader);
        result.replays.push(run);
        onReplay(run);
      }
    }
    return result;
  } finally {
    if (recording) {
      await settings.admin.eval(deletePrefix, 0, `${recording.snapshot}:`);
      await settings.admin.del(recording.events);
    }
    connection.disconnect();
  }
}
