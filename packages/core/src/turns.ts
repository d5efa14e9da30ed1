// At most `limit` pieces of work at once; the others wait their turn, first come first served.
import { isRedisUnavailableError } from './errors.js';

/**
 * Turns for large submissions on the shared connection. Each command fails once unanswered for the
 * command timeout, counted from when it is sent: many large batches sent at once queue their
 * commands in Redis, and the last ones would wait there longer than that and fail while Redis is
 * answering. Waiting here instead costs no throughput (the batches in flight keep Redis busy). When
 * a piece of work fails because Redis is unavailable, the waiting ones fail with it at once: each
 * would otherwise wait out its own timeout, one turn after another.
 */
export class Turns {
  private active = 0;
  private readonly waiting: { start: () => void; fail: (error: unknown) => void }[] = [];

  constructor(private readonly limit: number) {}

  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.active < this.limit) this.active += 1;
    else await new Promise<void>((start, fail) => this.waiting.push({ start, fail }));
    try {
      return await work();
    } catch (error) {
      if (isRedisUnavailableError(error)) for (const waiter of this.waiting.splice(0)) waiter.fail(error);
      throw error;
    } finally {
      // The turn passes to the next in line, or is given back.
      const next = this.waiting.shift();
      if (next) next.start();
      else this.active -= 1;
    }
  }
}
