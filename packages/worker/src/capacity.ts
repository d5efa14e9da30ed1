// How many tasks a worker process may run: one budget of slots shared by all its queues
// (WORKER_CONCURRENT_TASKS), a cap per queue (WORKER_QUEUE_CAPACITY) and the WORKER_TTL budget.
//
// A slot is reserved *before* a job is taken from Redis, so a job is never held active while it
// waits for room to run. A reservation lives only for one non-blocking fetch; a queue that turned
// out empty waits for new work without a reservation (see QueueFetcher) and takes a slot with
// tryTake() when a job arrives, giving the job back if none is free.

/** The slots shared by every queue of one worker process, and its WORKER_TTL budget. */
export class CapacityGate {
  private running = 0;
  private reserved = 0;
  private taken = 0;
  /** TTL budget held for jobs fetched in the call that finishes a task (see reserveHandOver). */
  private handOvers = 0;
  private closed = false;
  private readonly waiters: ((granted: boolean) => void)[] = [];

  /** @param ttlTasks tasks this process may take in its life; 0 = no limit. */
  constructor(
    readonly limit: number,
    readonly ttlTasks = 0,
  ) {}

  get runningTasks(): number {
    return this.running;
  }

  get takenTasks(): number {
    return this.taken;
  }

  /** True once the TTL budget is spent by tasks actually taken: this process takes no more work. */
  get ttlReached(): boolean {
    return this.ttlTasks > 0 && this.taken >= this.ttlTasks;
  }

  get isOpen(): boolean {
    return !this.closed && !this.ttlReached;
  }

  private budgetLeft(): boolean {
    return this.ttlTasks === 0 || this.taken + this.reserved + this.handOvers < this.ttlTasks;
  }

  private hasRoom(): boolean {
    return this.running + this.reserved < this.limit && this.budgetLeft();
  }

  /** Waits (first come, first served) for a slot to fetch one job into; false once closed or spent. */
  reserve(): Promise<boolean> {
    if (!this.isOpen) return Promise.resolve(false);
    if (this.waiters.length === 0 && this.hasRoom()) {
      this.reserved++;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** The reserved fetch found a job: it runs in the reserved slot. */
  commit(): void {
    this.reserved--;
    this.running++;
    this.taken++;
    this.settle();
  }

  /** The reserved fetch found nothing: the slot and its share of the TTL budget go back. */
  cancel(): void {
    this.reserved--;
    this.settle();
  }

  /** For a job fetched without a reservation: takes a slot now if one is free. */
  tryTake(): boolean {
    if (!this.isOpen || this.waiters.length > 0 || !this.hasRoom()) return false;
    this.running++;
    this.taken++;
    this.settle();
    return true;
  }

  /**
   * A finishing task may pass its slot straight to the next job of its queue, which BullMQ then
   * activates in the same call that finishes the task (one Redis call per job instead of two).
   * Refused while another fetcher waits for a slot, so queues take turns, or when the TTL budget
   * has no task left. On true, follow with confirmHandOver() or cancelHandOver().
   */
  reserveHandOver(): boolean {
    if (!this.isOpen || this.waiters.length > 0 || !this.budgetLeft()) return false;
    this.handOvers++;
    return true;
  }

  /** The next job came: it runs in the finishing task's slot. */
  confirmHandOver(): void {
    this.handOvers--;
    this.taken++;
  }

  /** No next job came: its share of the TTL budget goes back (the slot is released separately). */
  cancelHandOver(): void {
    this.handOvers--;
    this.settle();
  }

  /** A task is done with its slot. */
  release(): void {
    this.running--;
    this.settle();
  }

  /** Takes no more work: every waiting reserve() answers false. */
  close(): void {
    this.closed = true;
    this.settle();
  }

  private settle(): void {
    while (this.waiters.length > 0) {
      if (!this.isOpen) {
        this.waiters.shift()!(false);
        continue;
      }
      if (!this.hasRoom()) break;
      this.reserved++;
      this.waiters.shift()!(true);
    }
  }
}

/**
 * The cap of one queue, shared by the fetchers of its partitions when it is partitioned: a fetcher
 * holds a slot for its non-blocking fetch (tryReserve, then commit or cancel) or takes one for a job
 * that arrived while it waited (tryTake), so the queue never runs more than its limit.
 */
export class QueueSlots {
  private running = 0;
  private reserved = 0;
  private waiters: (() => void)[] = [];

  constructor(readonly limit: number) {}

  get runningTasks(): number {
    return this.running;
  }

  private hasRoom(): boolean {
    return this.running + this.reserved < this.limit;
  }

  /** Resolves once the queue looks to have room for one more task (it holds nothing). */
  whenFree(): Promise<void> {
    if (this.hasRoom()) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Holds a slot for one fetch; false when another fetcher of the queue took the room. */
  tryReserve(): boolean {
    if (!this.hasRoom()) return false;
    this.reserved++;
    return true;
  }

  /** The reserved fetch found a job: it runs in the reserved slot. */
  commit(): void {
    this.reserved--;
    this.running++;
  }

  /** The reserved fetch found nothing: the slot goes back. */
  cancel(): void {
    this.reserved--;
    this.wake();
  }

  /** For a job fetched without a reservation: takes a slot now if one is free. */
  tryTake(): boolean {
    if (!this.hasRoom()) return false;
    this.running++;
    return true;
  }

  release(): void {
    this.running--;
    this.wake();
  }

  /** Wakes the waiting fetchers: to look for room again, or to notice the worker is stopping. */
  wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) waiter();
  }
}
