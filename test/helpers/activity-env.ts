import { MockActivityEnvironment } from "@temporalio/testing";
import type { Logger } from "@temporalio/common";

const quiet: Logger = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} };

/** A MockActivityEnvironment with this activity info (attempt, heartbeatDetails, …) and a silent logger. */
export const activityEnv = (info: ConstructorParameters<typeof MockActivityEnvironment>[0] = {}) => new MockActivityEnvironment(info, { logger: quiet });

/**
 * Runs an activity in `env`, its arguments typed by the activity's own parameters (env.run infers
 * them from the arguments, which widens literals such as "AWS" to string).
 */
export const runActivity = <A extends unknown[], R>(env: MockActivityEnvironment, fn: (...args: A) => Promise<R>, ...args: NoInfer<A>): Promise<R> => env.run<A, R, typeof fn>(fn, ...args);

/** The rejection of `p`, to look at (fails the test when `p` resolves). */
export async function rejectionOf(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error("expected the activity to fail, but it completed");
}
