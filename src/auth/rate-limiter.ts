import { createHash } from "node:crypto";
import type { Redis } from "ioredis";
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from "rate-limiter-flexible";

export interface RateLimitResult {
  allowed: boolean;
  /** Seconds until the window resets (when not allowed). */
  retryAfterSeconds: number;
}

/** Fixed-window counters keyed by e.g. "login:account:<email>". */
export interface RateLimiter {
  hit(key: string, limit: number, windowMs: number): Promise<RateLimitResult>;
  reset(key: string): Promise<void>;
}

/** Longest key stored as is: callers bound their inputs; longer keys (a backstop) are stored as their SHA-256. */
const MAX_KEY_LENGTH = 512;

/**
 * The counters are rate-limiter-flexible's (atomic in Redis: one Lua script per hit). Its limiters
 * have a fixed limit and window each, while our interface passes them per call, so one limiter is
 * kept per (limit, window) pair; the pair is part of the store key prefix. Windows are whole
 * seconds (the library's unit), at least one.
 */
abstract class FlexibleRateLimiter implements RateLimiter {
  private readonly limiters = new Map<string, RateLimiterAbstract>();

  protected abstract create(points: number, durationSeconds: number, keyPrefix: string): RateLimiterAbstract;

  async hit(key: string, limit: number, windowMs: number): Promise<RateLimitResult> {
    const durationSeconds = Math.max(1, Math.ceil(windowMs / 1000));
    const id = `${limit}:${durationSeconds}`;
    let limiter = this.limiters.get(id);
    if (!limiter) {
      limiter = this.create(limit, durationSeconds, `reclo:rl:${id}`);
      this.limiters.set(id, limiter);
    }
    try {
      await limiter.consume(boundedKey(key));
      return { allowed: true, retryAfterSeconds: 0 };
    } catch (rejection) {
      if (rejection instanceof RateLimiterRes) return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(rejection.msBeforeNext / 1000)) };
      throw rejection;
    }
  }

  async reset(key: string): Promise<void> {
    await Promise.all([...this.limiters.values()].map((l) => l.delete(boundedKey(key))));
  }
}

function boundedKey(key: string): string {
  return key.length > MAX_KEY_LENGTH ? `sha256:${createHash("sha256").update(key).digest("hex")}` : key;
}

/** One process's memory; used when no REDIS_URL is configured. */
export class MemoryRateLimiter extends FlexibleRateLimiter {
  protected create(points: number, duration: number, keyPrefix: string): RateLimiterAbstract {
    return new RateLimiterMemory({ points, duration, keyPrefix });
  }
}

/**
 * Shared by every API process through Redis. When a Redis command fails (ioredis queues commands
 * while it connects, then gives up after its retries) the process counts in its own memory (the
 * library's insurance limiter) instead of failing logins.
 */
export class RedisRateLimiter extends FlexibleRateLimiter {
  constructor(private readonly redis: Redis) {
    super();
  }

  protected create(points: number, duration: number, keyPrefix: string): RateLimiterAbstract {
    return new RateLimiterRedis({
      storeClient: this.redis,
      points,
      duration,
      keyPrefix,
      insuranceLimiter: new RateLimiterMemory({ points, duration, keyPrefix }),
    });
  }
}
