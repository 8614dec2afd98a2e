import type { Logger } from "../logger";

export interface ActivityDeps {
  logger: Logger;
}

/**
 * Activities: plain async functions made by a factory that takes their dependencies
 * (temporalio/samples-typescript style). Workflows import only the type of this object.
 */
export function createActivities(deps: ActivityDeps) {
  return {
    /** Proves the worker picks up work: answers the workflow with the process that ran it. */
    async echo(message: string): Promise<string> {
      deps.logger.debug({ message }, "connectivity check activity");
      return `pong: ${message} (worker pid ${process.pid})`;
    },
  };
}

export type Activities = ReturnType<typeof createActivities>;
