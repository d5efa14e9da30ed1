// The one place Redis connections are made.
import { Redis, type RedisOptions } from 'ioredis';

export interface RedisConnectionOptions {
  /** Blocking users (BullMQ workers, the exporter) must wait for Redis instead of failing commands. */
  blocking?: boolean;
  connectionName?: string;
}

export function createRedisConnection(url: string, options: RedisConnectionOptions = {}): Redis {
  const base: RedisOptions = {
    connectionName: options.connectionName,
    lazyConnect: false,
    retryStrategy: (times) => Math.min(100 * times, 2000),
  };
  const tuned: RedisOptions = options.blocking
    ? { ...base, maxRetriesPerRequest: null, enableReadyCheck: true }
    : { ...base, maxRetriesPerRequest: 1, enableOfflineQueue: false, connectTimeout: 2000 };
  return new Redis(url, tuned);
}

/** Resolves once the connection answers PING, or rejects after timeoutMs. */
export async function waitForRedis(redis: Redis, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      if (redis.status === 'ready') {
        await redis.ping();
        return;
      }
    } catch (error) {
      lastError = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(
    `Redis did not answer within ${timeoutMs} ms${lastError ? `: ${(lastError as Error).message}` : ''}`,
  );
}
