import type { DeliverNotificationInput, DrillInput, RecoveryWorkflowInput, VerificationWorkflowInput, WorkflowStatusName } from "../../workflows/contracts";

/** What a start did: started the run, or found one with that workflow id already started (a retried request). */
export type StartOutcome = "STARTED" | "ALREADY_STARTED";

/** Each run's own id and hard limit (the workflow's execution timeout). */
export interface RunOptions {
  workflowId: string;
  executionTimeoutMs: number;
}

/** One activity the server is waiting on, as Temporal describes it. */
export interface PendingActivity {
  activityType: string;
  /** SCHEDULED: waiting for a worker to take it (or for its retry); STARTED: a worker has it. */
  state: "SCHEDULED" | "STARTED" | "CANCEL_REQUESTED" | "PAUSED" | "UNKNOWN";
  /** Temporal's attempt count (1 = first try). */
  attempt: number;
  lastHeartbeatAt?: Date;
  lastStartedAt?: Date;
  /** When it was (re)scheduled: after a retry's backoff, the time the retry becomes due. */
  scheduledAt?: Date;
  lastFailure?: string;
}

/** What a running workflow waits on right now (null: no such run, or it is closed). */
export interface PendingWork {
  activities: PendingActivity[];
  /** A workflow task no worker has taken yet, and since when. */
  workflowTaskScheduledAt?: Date;
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
  /** Delivers a notification (e-mail, webhooks); its workflow id is derived from the notification's, so it starts once. */
  startNotificationDelivery(input: DeliverNotificationInput, run: RunOptions): Promise<StartOutcome>;
  /** Creates or updates (in place) a schedule that starts a drill every `everyMs`. */
  scheduleDrill(scheduleId: string, everyMs: number, input: DrillInput, executionTimeoutMs: number): Promise<void>;
  /** Deletes a schedule; true when it existed (a missing one is not an error). */
  removeSchedule(scheduleId: string): Promise<boolean>;
  /** Asks a run to cancel (it cleans up itself); NOT_FOUND when no such workflow exists. */
  cancel(workflowId: string): Promise<"CANCEL_REQUESTED" | "NOT_FOUND">;
  /** Temporal's view of a run: RUNNING, COMPLETED, FAILED, … or NOT_FOUND. */
  status(workflowId: string): Promise<WorkflowStatusName>;
  /** What a running workflow waits on (its pending activities and workflow task); null when not running. */
  pendingWork(workflowId: string): Promise<PendingWork | null>;
  /** The latest run of a workflow id (its run id), null when there is none (support's diagnostics). */
  runOf?(workflowId: string): Promise<{ runId: string } | null>;
  /** Runs the connectivity check through a worker and returns its answer. */
  checkConnectivity(message: string, workflowId: string): Promise<string>;
}
