import type { ConnectivityActivities } from "../../workflows/contracts";
import type { Logger } from "../logger";

/** The connectivity check's activity: answers the workflow with the process that ran it. */
export function createConnectivityActivities(deps: { logger: Logger }): ConnectivityActivities {
  return {
    async echo(message: string): Promise<string> {
      deps.logger.debug({ message }, "connectivity check activity");
      return `pong: ${message} (worker pid ${process.pid})`;
    },
  };
}
