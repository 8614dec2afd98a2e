import { Client, Connection } from "@temporalio/client";
import type { Config } from "../config";
import { temporalConnectionOptions } from "./connection";

export interface TemporalHandle {
  client: Client;
  connection: Connection;
  /** Throws unless the server answers. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export async function connectTemporal(config: Config["temporal"]): Promise<TemporalHandle> {
  const connection = await Connection.connect({ ...temporalConnectionOptions(config), connectTimeout: "5s" });
  const client = new Client({ connection, namespace: config.namespace });
  return {
    client,
    connection,
    async ping() {
      await connection.withDeadline(Date.now() + 3000, () => connection.workflowService.getSystemInfo({}));
    },
    close: () => connection.close(),
  };
}
