import type { DrillInput, RecoveryWorkflowInput, VerificationWorkflowInput, WorkflowStatusName } from "../../workflows/contracts";

/** What a start did: started the run, or found one with that workflow id already started (a retried request). */
export type StartOutcome = "STARTED" | "ALREADY_STARTED";

/** Each run's own id and hard limit (the workflow's execution timeout). */
export interface RunOptions {
  workflowId: string;
  executionTimeoutMs: number;
}

/**
 * The workflows the product starts, named by what they do and typed by their contracts. Services
 * depend on the part they use (a `Pick<>` of it); the composition root passes the Temporal adapter
 * (src/temporal/workflows.ts), which starts each workflow by reference on the product's task queue.
 */
export interface WorkflowPort {
  /** Throws UNAVAILABLE (at once) while the workflow engine is known down: called before a run is recorded. */
  assertAvailable?(): void;
  startRecovery(input: RecoveryWorkflowInput, run: RunOptions): Promise<StartOutcome>;
  startVerification(input: VerificationWorkflowInput, run: RunOptions): Promise<StartOutcome>;
  startDrill(input: DrillInput, run: RunOptions): Promise<StartOutcome>;
  /** Creates or updates (in place) a schedule that starts a drill every `everyMs`. */
  scheduleDrill(scheduleId: string, everyMs: number, input: DrillInput, executionTimeoutMs: number): Promise<void>;
  /** Deletes a schedule; true when it existed (a missing one is not an error). */
  removeSchedule(scheduleId: string): Promise<boolean>;
  /** Asks a run to cancel (it cleans up itself); NOT_FOUND when no such workflow exists. */
  cancel(workflowId: string): Promise<"CANCEL_REQUESTED" | "NOT_FOUND">;
  /** Temporal's view of a run: RUNNING, COMPLETED, FAILED, … or NOT_FOUND. */
  status(workflowId: string): Promise<WorkflowStatusName>;
  /** Runs the connectivity check through a worker and returns its answer. */
  checkConnectivity(message: string, workflowId: string): Promise<string>;
}
