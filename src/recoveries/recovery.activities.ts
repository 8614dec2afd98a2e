import { Context, ApplicationFailure, CancelledFailure } from "@temporalio/activity";
import type { BootCheckRecord, RecoveryResources } from "../db/schema";
import type { ArtifactStore } from "../storage/artifact-store";
import { MissingChunkError, type ComposeCheckpoint, type ImageStore } from "../storage/image-store";
import type { Logger } from "../logger";
import type { InstanceService } from "../instances/instance.service";
import type { WorkflowPort } from "../temporal/workflow-port";
import type {
  BootCheckOutcome,
  CheckBootInput,
  LaunchInstanceInput,
  OpenAccessPointInput,
  PrivateAccessInfo,
  ReconcileActivities,
  RecoveryActivities,
  RecoveryCleanup,
  StaleInstanceActivities,
} from "../../workflows/contracts";
import type { AccessService } from "../access/access.service";
import type { RecoveryProgress, StepState } from "./recovery-progress";
import { callTarget } from "../compute/call";
import { cancellable, heartbeating } from "./heartbeat";
import type { Evidence } from "../evidence";
import { runBootCheck } from "./boot-check";
import { SCREENSHOT_EXTENSION, type ComputeTarget, type ComposedImage, type InstanceStatus, type TargetKind } from "../compute/target";

export interface RecoveryActivityDeps {
  /** Composes the restore point into the image the target imports (and removes it again). */
  images: ImageStore;
  /** Where the boot check's screenshot is kept. */
  artifacts: Pick<ArtifactStore, "put" | "delete">;
  /** OCR binary for the boot check's screenshots (default "tesseract"). */
  tesseract?: string;
  /** Records the recovery's state, progress, timeline, resources and boot check (and publishes them). */
  progress: Pick<RecoveryProgress, "begin" | "enter" | "progress" | "event" | "setResources" | "recordedResources" | "setBootCheck" | "finish" | "createdAt">;
  /** The recovered machine's row. */
  instances: Pick<InstanceService, "forRecovery" | "record" | "markTerminatedForRecovery">;
  /** Compute targets by kind; a missing kind fails the step as not configured. */
  targets: Partial<Record<TargetKind, ComputeTarget>>;
  /** Opens the machine's WireGuard access point, and closes it on cleanup. */
  access: Pick<AccessService, "open" | "closeForRecovery">;
}

const evidenceLine = (e: Evidence) => `${e.kind} ${e.ok ? "✓" : e.failure ? "✗" : "–"} ${e.detail}`;

const info = () => Context.current().info;

/**
 * The recovery's activities: plain async functions over their dependencies. Each records its
 * start, retries and end on the recovery's timeline, persists progress and publishes it.
 */
export function createRecoveryActivities(deps: RecoveryActivityDeps): RecoveryActivities {
  const target = (kind: TargetKind): ComputeTarget => {
    const t = deps.targets[kind];
    if (!t) throw ApplicationFailure.nonRetryable(`Recovery target ${kind} is not configured on this worker`, "TargetNotConfigured");
    return t;
  };
  /**
   * Records STARTED (or RETRYING on a later attempt) for a step; `attempt` is the step's attempt as
   * Temporal counts it, and every later entry of the step carries the same number.
   */
  const started = async (recoveryId: string, step: StepState, what: string, attempt = info().attempt) => {
    await deps.progress.event(recoveryId, step, attempt > 1 ? "RETRYING" : "STARTED", attempt > 1 ? `${what} (attempt ${attempt})` : what, attempt);
    return attempt;
  };
  /**
   * The attempt of a step done in two activities (start, then wait): the wait goes on counting from
   * the start's attempt, so a retried wait is a further attempt of the same step.
   */
  const stepAttempt = (first: number | undefined) => (first ?? 1) + info().attempt - 1;

  /** Polls the import until it completes, failing on a deleted import (the poll sleeps hear a cancel). */
  const pollImport = async (input: { recoveryId: string; target: TargetKind; importTaskId: string; pollIntervalMs: number }, attempt: number, seen: (percent: number) => void) => {
    for (;;) {
      const status = await callTarget(() => target(input.target).describeImport(input.importTaskId));
      seen(status.progress);
      if (status.state === "failed") {
        await deps.progress.event(input.recoveryId, "IMPORTING", "FAILED", status.message ?? "import failed", attempt);
        throw ApplicationFailure.nonRetryable(`Import failed: ${status.message ?? "unknown reason"}`, "ImportFailed");
      }
      await deps.progress.progress(input.recoveryId, "IMPORTING", status.progress, status.message ? `Importing: ${status.message}` : undefined);
      if (status.state === "completed") {
        if (!status.imageId) throw new Error(`import ${input.importTaskId} completed without an image id`);
        await deps.progress.setResources(input.recoveryId, { imageId: status.imageId, snapshotIds: status.snapshotIds ?? [] });
        await deps.progress.event(input.recoveryId, "IMPORTING", "SUCCEEDED", `Image ${status.imageId} ready`, attempt);
        return { imageId: status.imageId, snapshotIds: status.snapshotIds ?? [] };
      }
      await Context.current().sleep(input.pollIntervalMs);
    }
  };

  /** Polls the instance until it runs; a lost/terminated instance fails (the poll sleeps hear a cancel). */
  const pollInstance = async (
    input: { recoveryId: string; target: TargetKind; instanceId: string; pollIntervalMs: number; launchedAtMs?: number },
    attempt: number,
    seen: (state: string) => void,
  ): Promise<InstanceStatus> => {
    let polls = 0;
    for (;;) {
      const status = await callTarget(() => target(input.target).describeInstance(input.instanceId, { launchedAtMs: input.launchedAtMs }));
      seen(status.state);
      if (status.state === "running") {
        await deps.progress.progress(input.recoveryId, "LAUNCHING", 100, `Running at ${status.publicAddress ?? status.privateAddress ?? "(no address)"}`);
        await deps.progress.event(input.recoveryId, "LAUNCHING", "SUCCEEDED", `Instance ${input.instanceId} running`, attempt);
        return status;
      }
      if (status.state === "terminated" || status.state === "lost") throw ApplicationFailure.nonRetryable(`Instance ${input.instanceId} is ${status.state} before it ran`, "InstanceLost");
      polls++;
      await deps.progress.progress(input.recoveryId, "LAUNCHING", Math.min(90, 20 + polls * 10), `Instance ${status.state}`);
      await Context.current().sleep(input.pollIntervalMs);
    }
  };

  return {
    async beginRecovery(input: { recoveryId: string; deadlineAt: number }): Promise<void> {
      await deps.progress.begin(input.recoveryId, new Date(input.deadlineAt));
      await deps.progress.enter(input.recoveryId, "PREPARING", "Composing the restore point");
    },

    /** PREPARING: server-side multipart composition of the restore point (progress = parts done / parts). */
    async composeImage(input: { recoveryId: string; userId: string; backupId: string }): Promise<ComposedImage & { uploadId?: string }> {
      await started(input.recoveryId, "PREPARING", "Composing the restore point from its chunks");
      const key = `${input.userId}/recoveries/${input.recoveryId}.raw`;
      await deps.progress.setResources(input.recoveryId, { composedKey: key });
      const resume = info().heartbeatDetails as ComposeCheckpoint | undefined;
      let checkpoint = resume;
      try {
        const image = await heartbeating(
          () =>
            cancellable(`composition for recovery ${input.recoveryId}`, (signal) =>
              deps.images.compose({
                userId: input.userId,
                backupId: input.backupId,
                key,
                resume,
                signal,
                onCheckpoint: (c) => {
                  checkpoint = c;
                  Context.current().heartbeat(c);
                },
                onProgress: (done, parts) => {
                  void deps.progress.progress(input.recoveryId, "PREPARING", (done / parts) * 100, `Composing: ${done}/${parts} parts`).catch(() => {});
                },
              }),
            ),
          () => checkpoint,
        );
        await deps.progress.progress(input.recoveryId, "PREPARING", 100, "Restore point composed");
        await deps.progress.event(input.recoveryId, "PREPARING", "SUCCEEDED", `Composed ${image.sizeBytes} bytes at ${image.key}`, info().attempt);
        return { ...image, uploadId: checkpoint?.uploadId };
      } catch (err) {
        if (err instanceof MissingChunkError) throw ApplicationFailure.nonRetryable(err.message, "MissingChunk");
        throw err;
      }
    },

    /** IMPORTING, part 1: hands the composed image to the target (idempotent per recovery). */
    async startImport(input: { recoveryId: string; target: TargetKind; image: ComposedImage }): Promise<{ importTaskId: string; attempt: number }> {
      await deps.progress.enter(input.recoveryId, "IMPORTING", "Importing the disk image");
      const attempt = await started(input.recoveryId, "IMPORTING", `Importing into ${input.target}`);
      // A target that cannot work here (QEMU not installed, AWS credentials refused) fails at once, saying what to fix.
      await callTarget(() => target(input.target).checkAvailable());
      // Cancelled (the recovery was): a local import stops and removes its files before this
      // rejects, and the workflow waits for that before it cleans up and reports CANCELLED.
      const cancelled = Context.current().cancellationSignal;
      let result: { importTaskId: string };
      try {
        // Heartbeats on a timer: a download held back by the rate limit or a long qemu-img convert
        // reports no progress for a while, and must still hear a cancel within a second.
        result = await heartbeating(() =>
          callTarget(() =>
            target(input.target).startImport(
              input.recoveryId,
              input.image,
              (percent, message) => {
                void deps.progress.progress(input.recoveryId, "IMPORTING", percent, message).catch(() => {});
              },
              cancelled,
            ),
          ),
        );
      } catch (err) {
        if (cancelled.aborted) throw new CancelledFailure(`import of recovery ${input.recoveryId} cancelled`);
        throw err;
      }
      await deps.progress.setResources(input.recoveryId, { importTaskId: result.importTaskId });
      return { importTaskId: result.importTaskId, attempt };
    },

    /** IMPORTING, part 2: polls the import until it completes (heartbeating), failing on a deleted import. */
    async waitForImport(input: { recoveryId: string; target: TargetKind; importTaskId: string; pollIntervalMs: number; stepAttempt?: number }): Promise<{ imageId: string; snapshotIds: string[] }> {
      const attempt = stepAttempt(input.stepAttempt);
      if (info().attempt > 1) await started(input.recoveryId, "IMPORTING", `Waiting for import ${input.importTaskId}`, attempt);
      let last = 0;
      return heartbeating(
        () => pollImport(input, attempt, (p) => (last = p)),
        () => last,
      );
    },

    /** LAUNCHING, part 1: the instance (idempotent per recovery through the provider's client token). */
    async launchInstance(input: LaunchInstanceInput) {
      await deps.progress.enter(input.recoveryId, "LAUNCHING", "Launching the recovered machine");
      const attempt = await started(input.recoveryId, "LAUNCHING", `Launching ${input.name}`);
      // The provider call itself cannot be stopped halfway: a cancel that lands during it is acted on
      // as soon as it returns, after the instance is recorded for cleanup.
      const launched = await heartbeating(() =>
        callTarget(() =>
          target(input.target).launch({
            idempotencyKey: input.recoveryId,
            userId: input.userId,
            imageId: input.imageId,
            name: input.name,
            allowedCidr: input.allowedCidr,
            isolated: input.isolated,
            allowInternet: input.allowInternet,
            ...(input.ports ? { ports: input.ports } : {}),
          }),
        ),
      );
      await deps.progress.setResources(input.recoveryId, { instanceId: launched.instanceId, securityGroupId: launched.securityGroupId });
      if (Context.current().cancellationSignal.aborted) throw new CancelledFailure(`launch of recovery ${input.recoveryId} cancelled`);
      await deps.progress.progress(input.recoveryId, "LAUNCHING", 20, `Instance ${launched.instanceId} starting`);
      // The provider's launch time (the first launch's, on an idempotent retry): the workflow keeps it
      // and hands it to waitForInstance and checkBoot, whichever worker runs them.
      return { instanceId: launched.instanceId, securityGroupId: launched.securityGroupId, launchedAtMs: launched.launchedAtMs ?? Date.now(), attempt };
    },

    /**
     * LAUNCHING, part 2: waits until the provider reports it running; a lost/terminated instance fails.
     * launchedAtMs (absent in runs started before it was passed): "not found" within the provider's
     * visibility grace after it is "pending", on this worker or any other.
     */
    async waitForInstance(input: { recoveryId: string; target: TargetKind; instanceId: string; pollIntervalMs: number; launchedAtMs?: number; stepAttempt?: number }): Promise<InstanceStatus> {
      const attempt = stepAttempt(input.stepAttempt);
      if (info().attempt > 1) await started(input.recoveryId, "LAUNCHING", `Waiting for ${input.instanceId} to run`, attempt);
      let last = "";
      return heartbeating(
        () => pollInstance(input, attempt, (s) => (last = s)),
        () => last,
      );
    },
    /**
     * LAUNCHING, last: the running machine's WireGuard access point (its own key pair, UDP port and
     * /24 tunnel subnet; idempotent per recovery). Recorded on the timeline with where to connect.
     * A target without private access says so on the timeline and the recovery goes on.
     */
    async openAccessPoint(input: OpenAccessPointInput): Promise<PrivateAccessInfo | null> {
      const attempt = info().attempt;
      const t = target(input.target);
      if (!t.access) {
        await deps.progress.event(input.recoveryId, "LAUNCHING", "SUCCEEDED", `The ${input.target} target offers no private access: reach the machine at its own address`, attempt);
        return null;
      }
      await deps.progress.progress(input.recoveryId, "LAUNCHING", 100, "Opening private access (WireGuard)");
      const opened = await heartbeating(() =>
        callTarget(() => deps.access.open({ recoveryId: input.recoveryId, userId: input.userId, provider: input.target, providerInstanceId: input.instanceId, ports: input.ports })),
      );
      const made = opened.resources.length ? ` (${opened.resources.join(", ")})` : "";
      await deps.progress.event(
        input.recoveryId,
        "LAUNCHING",
        "SUCCEEDED",
        `Private access open${made}: WireGuard endpoint ${opened.endpoint}; the machine is ${opened.tunnelAddress}, ports ${opened.ports.join(", ")}`.slice(0, 1024),
        attempt,
      );
      return { endpoint: opened.endpoint, tunnelAddress: opened.tunnelAddress, ports: opened.ports };
    },

    /**
     * CHECKING: the boot-evidence collector on the recovered machine, until it is seen up (VERIFIED),
     * seen failing (FAILED) or the check's time runs out (INCONCLUSIVE). Every piece of evidence goes
     * on the timeline and into `bootCheck` as it is seen; the last screenshot is kept in the
     * artifacts bucket; the RTO is measured from the recovery's creation (startRecovery) to the
     * first positive signal. A retried attempt starts collecting again (launchedAtMs is the
     * workflow's), so a worker crash never loses the verdict.
     */
    async checkBoot(input: CheckBootInput): Promise<BootCheckOutcome> {
      await deps.progress.enter(input.recoveryId, "CHECKING", "Checking that the machine started");
      await started(input.recoveryId, "CHECKING", `Checking that ${input.instanceId} started`);
      const createdAt = await deps.progress.createdAt(input.recoveryId);
      if (!createdAt) throw ApplicationFailure.nonRetryable(`recovery ${input.recoveryId} not found`, "NotFound");
      const record: BootCheckRecord = { status: "CHECKING", evidence: [] };
      await deps.progress.setBootCheck(input.recoveryId, record);
      // Progress while nothing is decided: approaches 90 % as the usual boot time (a minute) passes.
      const stepPercent = () => Math.min(90, Math.floor(90 * (1 - Math.exp(-(Date.now() - input.launchedAtMs) / 60_000))));
      // A poll may take longer than the heartbeat timeout (OCR of a changing screen on a busy host),
      // so this process heartbeats on a timer while it works; a dead worker still stops heartbeating.
      return heartbeating(async () => {
        const result = await cancellable(`boot check of recovery ${input.recoveryId}`, (signal) =>
          runBootCheck({
            target: target(input.target),
            instanceId: input.instanceId,
            launchedAtMs: input.launchedAtMs,
            timeoutMs: input.timeoutMs,
            pollIntervalMs: input.pollIntervalMs,
            ports: input.ports,
            bootMarker: input.bootMarker,
            graceMs: input.graceMs,
            tesseract: deps.tesseract,
            signal,
            onPoll: () => {
              void deps.progress.progress(input.recoveryId, "CHECKING", stepPercent()).catch(() => {});
            },
            onEvidence: async (e) => {
              record.evidence.push({ kind: e.kind, ok: e.ok, failure: e.failure, detail: e.detail.slice(0, 1000), at: e.at });
              await deps.progress.event(input.recoveryId, "CHECKING", "OBSERVED", evidenceLine(e), info().attempt);
              await deps.progress.setBootCheck(input.recoveryId, record);
              await deps.progress.progress(input.recoveryId, "CHECKING", stepPercent(), `Seen: ${e.detail.slice(0, 200)}`);
            },
          }),
        );
        // The evidence as the check reports it in full (including what was checked and did not pass).
        record.evidence = result.evidence.map((e) => ({ kind: e.kind, ok: e.ok, failure: e.failure, detail: e.detail.slice(0, 1000), at: e.at }));
        record.status = result.verdict;
        record.reason = result.reason?.slice(0, 1000);
        record.screenText = result.screenText?.trim().slice(0, 4000) || undefined;
        record.checkedAt = new Date().toISOString();
        if (result.screenshot) {
          const { bytes, contentType } = result.screenshot;
          const key = `${input.userId}/recoveries/${input.recoveryId}-check.${SCREENSHOT_EXTENSION[contentType]}`;
          await deps.progress.setResources(input.recoveryId, { checkScreenshotKey: key });
          await deps.artifacts.put(key, bytes, contentType);
          record.screenshotKey = key;
          record.screenshotContentType = contentType;
        }
        const rtoSeconds = result.firstPositiveAtMs !== undefined ? Math.max(0, Math.round((result.firstPositiveAtMs - createdAt.getTime()) / 10) / 100) : null;
        await deps.progress.setBootCheck(input.recoveryId, record, rtoSeconds);
        await deps.progress.progress(input.recoveryId, "CHECKING", 100);
        const attempt = info().attempt;
        if (result.verdict === "VERIFIED") await deps.progress.event(input.recoveryId, "CHECKING", "SUCCEEDED", `It started: measured RTO ${rtoSeconds} s`, attempt);
        else
          await deps.progress.event(
            input.recoveryId,
            "CHECKING",
            "FAILED",
            `${result.verdict === "FAILED" ? "It did not start" : "Could not tell whether it started"}: ${record.reason ?? "no evidence"}`,
            attempt,
          );
        return { status: result.verdict, ...(record.reason ? { reason: record.reason } : {}), ...(rtoSeconds !== null ? { rtoSeconds } : {}) };
      });
    },

    /**
     * COMPLETED: the instances row (idempotent per recovery) and the terminal state. A machine that
     * failed its boot check (or could not be shown to start) stays, and the message says so.
     */
    async completeRecovery(input: {
      recoveryId: string;
      userId: string;
      target: TargetKind;
      instanceId: string;
      name: string;
      status: InstanceStatus;
      bootCheck?: BootCheckOutcome;
      access?: PrivateAccessInfo | null;
    }): Promise<string> {
      const existing = await deps.instances.forRecovery(input.userId, input.recoveryId);
      const row =
        existing ??
        (await deps.instances.record(input.userId, {
          recoveryId: input.recoveryId,
          provider: input.target,
          providerId: input.instanceId,
          name: input.name,
          state: "RUNNING",
          address: input.status.publicAddress ?? null,
          privateAddress: input.status.privateAddress ?? null,
          zone: input.status.zone ?? null,
        }));
      const at = input.access
        ? `${input.access.tunnelAddress} (ports ${input.access.ports.join(", ")}) over WireGuard ${input.access.endpoint}`
        : (input.status.publicAddress ?? input.status.privateAddress ?? "unknown address");
      const check = input.bootCheck;
      const message = !check
        ? `Recovered: ${input.name} at ${at}`
        : check.status === "VERIFIED"
          ? `Recovered: ${input.name} at ${at}; it started (measured RTO ${check.rtoSeconds ?? "?"} s)`
          : check.status === "FAILED"
            ? `Recovered ${input.name} at ${at}, but it did not start: ${check.reason ?? "boot check failed"}. The machine is kept so you can look at it.`
            : `Recovered ${input.name} at ${at}, but nothing showed that it started: ${check.reason ?? "no evidence"}. The machine is kept so you can look at it.`;
      await deps.progress.finish(input.recoveryId, "COMPLETED", { message: message.slice(0, 1024) });
      return row.id;
    },

    /**
     * Compensation: every provider resource the recovery created is removed (each step idempotent,
     * each recorded on the timeline). The composed image object is deleted too.
     */
    async cleanupRecovery(input: RecoveryCleanup): Promise<string[]> {
      return heartbeating(() => cleanup(input));
    },

    /** After a completed recovery: the composed object is no longer needed (the image lives at the target). */
    async deleteComposedImage(input: { recoveryId: string; key: string }): Promise<void> {
      await deps.images.delete(input.key);
    },

    async failRecovery(input: { recoveryId: string; state: "FAILED" | "CANCELLED"; failureReason: string; message: string }): Promise<void> {
      await deps.progress.event(input.recoveryId, input.state, input.state === "CANCELLED" ? "CANCELLED" : "FAILED", input.message, info().attempt);
      await deps.progress.finish(input.recoveryId, input.state, { failureReason: input.failureReason, message: input.message });
    },
  };

  /**
   * Compensation: every resource the recovery created is removed (each step idempotent, each
   * recorded on the timeline). What the workflow learned is completed by what the steps recorded
   * before their work began (a step cancelled halfway never returned its ids to the workflow), and
   * what neither knows is found by its name, derived from the recovery id.
   */
  async function cleanup(given: RecoveryCleanup): Promise<string[]> {
    const recorded = (await deps.progress.recordedResources(given.recoveryId)) ?? {};
    const input: RecoveryCleanup = { ...given };
    for (const [k, v] of Object.entries(recorded) as [keyof RecoveryResources, unknown][]) {
      if (input[k] === undefined && v !== undefined && v !== null) (input as unknown as Record<string, unknown>)[k] = v;
    }
    const t = deps.targets[input.target];
    const done: string[] = [];
    const note = async (what: string) => {
      done.push(what);
      await deps.progress.event(input.recoveryId, "FAILED", "CLEANUP", what, info().attempt);
    };
    const step = async (what: string, fn: () => Promise<void>) => {
      await fn();
      await note(what);
    };
    // Without a recorded instance id the launch may have been cut short: the target finds the
    // machine it launches under the recovery id, where it can.
    if (t && !input.instanceId && t.discardLaunch) for (const what of await callTarget(() => t.discardLaunch!(input.recoveryId))) await note(what);
    // Without a recorded image id the import may still be running, or may have finished just
    // as the recovery was cancelled: the target finds and removes it by the recovery id.
    if (t && !input.imageId) for (const what of await callTarget(() => t.discardImport(input.recoveryId, input.importTaskId))) await note(what);
    // The access point goes first (terminateInstance closes it too; this also records it closed).
    for (const what of await callTarget(() => deps.access.closeForRecovery(input.recoveryId))) await note(what);
    if (t && input.instanceId) await step(`terminated instance ${input.instanceId}`, () => callTarget(() => t.terminateInstance(input.instanceId!)));
    if (t && input.imageId) await step(`deleted image ${input.imageId}`, () => callTarget(() => t.deleteImage(input.imageId!, input.snapshotIds)));
    if (t && input.securityGroupId) await step(`deleted security group ${input.securityGroupId}`, () => callTarget(() => t.deleteNetworkGuard(input.securityGroupId!)));
    if (input.checkScreenshotKey) {
      await step(`deleted boot-check screenshot ${input.checkScreenshotKey}`, () => deps.artifacts.delete(input.checkScreenshotKey!));
    }
    if (input.composedKey) {
      // A composition cancelled halfway leaves its multipart upload open: it is found by the key.
      await deps.images.abortComposition(input.composedKey, input.composeUploadId);
      await step(`deleted composed image ${input.composedKey}`, () => deps.images.delete(input.composedKey!));
    }
    // A recorded instance row goes with the machine.
    await deps.instances.markTerminatedForRecovery(input.recoveryId);
    return done;
  }
}

/** reconcileRecoveries' activities: active recoveries whose workflow is gone are marked FAILED (honestly, not silently). */
export function createReconcileActivities(deps: {
  progress: Pick<RecoveryProgress, "staleActive" | "event" | "finish">;
  /** Asks Temporal whether a workflow still runs. */
  workflows: Pick<WorkflowPort, "status">;
}): ReconcileActivities {
  return {
    /** Active recoveries not updated for `olderThanMs` (candidates for the reconciler). */
    staleActiveRecoveries: (input) => deps.progress.staleActive(input.olderThanMs),

    workflowStatus: (workflowId) => deps.workflows.status(workflowId),

    async markLostRecoveries(input: { recoveryIds: string[]; reason: string }): Promise<number> {
      let n = 0;
      for (const id of input.recoveryIds) {
        await deps.progress.event(id, "FAILED", "FAILED", input.reason, 1);
        if (await deps.progress.finish(id, "FAILED", { failureReason: "WORKFLOW_LOST", message: input.reason })) n++;
      }
      return n;
    },
  };
}

/** terminateStaleInstances' activity. */
export function createStaleInstanceActivities(deps: {
  instances: Pick<InstanceService, "stoppedBefore" | "markTerminated">;
  targets: Partial<Record<TargetKind, ComputeTarget>>;
  logger: Logger;
}): StaleInstanceActivities {
  return {
    /** Terminates instances stopped for longer than `olderThanMs`. Idempotent. */
    async terminateStaleInstances(input: { olderThanMs: number }): Promise<string[]> {
      const stale = await deps.instances.stoppedBefore(new Date(Date.now() - input.olderThanMs));
      const terminated: string[] = [];
      for (const row of stale) {
        const t = deps.targets[row.provider];
        if (!t) continue;
        // Our record may be older than the machine's state (started again from the provider's
        // console since): only a machine the provider still reports stopped (or gone) is terminated.
        const { state } = await callTarget(() => t.describeInstance(row.providerId));
        if (state === "pending" || state === "running" || state === "stopping") {
          deps.logger.info({ instance: row.id, state }, "stale-instance clean-up: no longer stopped, kept");
          continue;
        }
        await callTarget(() => t.terminateInstance(row.providerId));
        await deps.instances.markTerminated([row]);
        terminated.push(row.id);
      }
      if (terminated.length) deps.logger.info({ terminated }, "terminated instances stopped too long");
      return terminated;
    },
  };
}
