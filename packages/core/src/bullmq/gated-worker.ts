// A BullMQ Worker in manual mode whose activations Jobbers gates, and which takes up the job BullMQ
// hands over in the call that finishes the previous one (fetch-next). Overrides BullMQ's protected
// moveToActive and uses its protected nextJobFromJobData.
import { Job, Worker, type WorkerOptions } from 'bullmq';

export interface ActivationGate {
  /** Whether a job may be activated now; false makes the fetch take nothing. */
  mayActivate(): boolean;
  /** Runs (and is awaited, when it returns a promise) right before each activation. */
  beforeActivate(): Promise<void> | undefined;
}

export class UnadoptedJobError extends Error {
  constructor(
    readonly jobId: string,
    override readonly cause: unknown,
  ) {
    super(`could not take up handed-over job ${jobId}: ${(cause as Error)?.message ?? cause}`);
    this.name = 'UnadoptedJobError';
  }
}

/**
 * The gate is checked right before BullMQ's moveToActive, so a fetch that wakes up once the gate has
 * closed (a worker draining) takes nothing.
 */
export class GatedWorker<T = unknown> extends Worker<T> {
  constructor(
    queue: string,
    options: WorkerOptions,
    private readonly gate: ActivationGate,
  ) {
    super(queue, null, { ...options, autorun: false });
  }

  protected override async moveToActive(token: string, name?: string): Promise<Job<T>> {
    if (!this.gate.mayActivate()) return undefined as unknown as Job<T>;
    // Only a stale role record costs a wait; the usual activation takes no extra tick.
    const recording = this.gate.beforeActivate();
    if (recording) await recording;
    return super.moveToActive(token, name);
  }

  /**
   * The job BullMQ activated in the call that finished the previous one (`next`, that call's raw
   * reply), if any. Throws UnadoptedJobError when BullMQ activated a job that could not be taken up:
   * it sits active under this token and must be given back, or its lease would expire.
   */
  async adopt(next: unknown, token: string): Promise<Job<T> | undefined> {
    if (!Array.isArray(next) || !next[0]) return undefined;
    const jobId = String(next[1]);
    let job: Job<T> | undefined;
    try {
      job = (await this.nextJobFromJobData(next[0], next[1], token)) ?? undefined;
    } catch (error) {
      throw new UnadoptedJobError(jobId, error);
    }
    if (!job) throw new UnadoptedJobError(jobId, new Error('BullMQ did not build the handed-over job'));
    return job;
  }

  /** The job with this id, read from Redis (for giving back a job that could not be adopted). */
  readJob(id: string): Promise<Job<T> | undefined> {
    return Job.fromId<T>(this, id);
  }
}
