import { randomUUID } from "node:crypto";
import type { RecoveryWorkflowInput } from "../../workflows/contracts";

/** A recovery workflow's input for runs with mocked activities (the workflow tests and the recorded histories). */
export function recoveryInput(overrides: Partial<RecoveryWorkflowInput> = {}): RecoveryWorkflowInput {
  return {
    recoveryId: randomUUID(),
    userId: "user-1",
    backupId: "backup-1",
    target: "AWS",
    name: "web-recovered",
    allowedCidr: "198.51.100.0/24",
    timeLimitMs: 60_000,
    pollIntervalMs: 50,
    // Long enough that a loaded machine never misses a heartbeat window; a cancel arrives within a
    // second (workers send heartbeats at least that often, as the product's do).
    heartbeatTimeoutMs: 3_000,
    bootCheck: { timeoutMs: 5_000, pollIntervalMs: 50, ports: [22] },
    ...overrides,
  };
}
