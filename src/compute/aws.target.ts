import {
  CancelImportTaskCommand,
  DeleteSnapshotCommand,
  DeregisterImageCommand,
  DescribeImagesCommand,
  DescribeImportImageTasksCommand,
  DescribeInstanceStatusCommand,
  DescribeInstancesCommand,
  DescribeRegionsCommand,
  DescribeSecurityGroupRulesCommand,
  EC2Client,
  GetConsoleOutputCommand,
  GetConsoleScreenshotCommand,
  ImportImageCommand,
  RevokeSecurityGroupEgressCommand,
  RunInstancesCommand,
  StartInstancesCommand,
  StopInstancesCommand,
  TerminateInstancesCommand,
  type _InstanceType,
  type ImportImageTask,
  type Instance,
} from "@aws-sdk/client-ec2";
import type { Config } from "../config";
import { AwsAccessPoints, ROLE_ACCESS_POINT, TAG_INSTANCE_SG, TAG_RECOVERY, TAG_ROLE, deleteGroup, ensureGroup, groupsTagged, instancesTagged, terminateGateways, type AwsGatewayOptions } from "./aws-access";
import { classifyAwsError, ec2Call, hasCode } from "./aws-errors";
import {
  TargetError,
  type ComposedImage,
  type ComputeTarget,
  type ConsoleScreenshot,
  type DescribeOptions,
  type ImportStatus,
  type InstanceProviderState,
  type InstanceStatus,
  type LaunchRequest,
  type LaunchResult,
  type StatusCheckState,
  type StatusChecks,
} from "./target";

export { classifyAwsError };

/**
 * EC2 client for the recovery target. Credentials come from the SDK's default chain
 * (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, an instance role), not from the S3 store's
 * keys. The SDK retries throttling and transient errors up to `maxAttempts`; whatever still fails
 * is classified by {@link classifyAwsError} so Temporal decides on the next retry.
 */
export function createEc2Client(aws: Config["aws"]): EC2Client {
  return new EC2Client({ region: aws.region, endpoint: aws.ec2Endpoint, maxAttempts: 3 });
}

export interface AwsTargetOptions {
  /** IAM role VM Import assumes to read the imports bucket (the "vmimport" service role). */
  importRoleName: string;
  instanceType: string;
  /**
   * Subnet recovered machines launch into, without a public address (a private subnet: no route
   * from the internet). Unset: EC2 picks the default VPC's default subnet (still no public address).
   */
  privateSubnetId?: string;
  /** VPC of the per-recovery security groups (and of both subnets); the account's default VPC when unset. */
  vpcId?: string;
  /** The WireGuard gateway of each machine's access point; without it the target offers no private access. */
  gateway?: AwsGatewayOptions;
  now?: () => Date;
}

/**
 * EC2's DescribeInstances is eventually consistent: for a short while after RunInstances it may
 * answer InvalidInstanceID.NotFound. Within this window after our own launch, "not found" is
 * reported as "pending" rather than "lost".
 */
export const LAUNCH_VISIBILITY_GRACE_MS = 2 * 60_000;

/** Instance ids per DescribeInstances call of the state sync (the filter takes at most 200 values). */
const DESCRIBE_BATCH = 100;

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/**
 * The ComputeTarget on AWS: VM Import (ImportImage from the imports bucket) to an AMI, then one
 * EC2 instance per recovery in a private subnet, without a public address, behind its own security
 * group, which admits only the machine's access point (aws-access.ts: a WireGuard gateway with its
 * own group) on the declared ports — no CIDR rule: the only way in is the access point.
 * Idempotency: ImportImage and RunInstances carry ClientToken = the idempotency key (a recovery's
 * id); the security groups are named after it and reused when they already exist; everything is
 * tagged `reclo:recovery`; deletes treat "not found" as done.
 */
export class AwsTarget implements ComputeTarget {
  readonly kind = "AWS" as const;
  private readonly now: () => Date;
  /** Launch time of instances this process started, for the eventual-consistency grace. */
  private readonly launchedAt = new Map<string, number>();

  /** Private access over WireGuard: present when a gateway AMI and public subnet are configured. */
  readonly access?: AwsAccessPoints;

  constructor(
    private readonly ec2: EC2Client,
    private readonly opts: AwsTargetOptions,
  ) {
    this.now = opts.now ?? (() => new Date());
    if (opts.gateway) this.access = new AwsAccessPoints(ec2, opts.gateway, opts.vpcId);
  }

  async checkAvailable(): Promise<void> {
    try {
      await this.call(() => this.ec2.send(new DescribeRegionsCommand({})));
    } catch (err) {
      const e = err as TargetError;
      if (e.retryable) throw e;
      throw new TargetError(
        `AWS credentials cannot use EC2 (${e.message}); set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or AWS_PROFILE / an instance role) ` +
          `allowed to use EC2 and VM Import in this region, or disable AWS_RECOVERY_ENABLED`,
        false,
        e.code,
      );
    }
  }

  async startImport(idempotencyKey: string, image: ComposedImage): Promise<{ importTaskId: string }> {
    const out = await this.call(() =>
      this.ec2.send(
        new ImportImageCommand({
          ClientToken: idempotencyKey,
          RoleName: this.opts.importRoleName,
          Description: `ReClo recovery ${idempotencyKey}`,
          DiskContainers: [{ Format: "RAW", UserBucket: { S3Bucket: image.bucket, S3Key: image.key } }],
          TagSpecifications: [{ ResourceType: "import-image-task", Tags: [{ Key: "reclo:recovery", Value: idempotencyKey }] }],
        }),
      ),
    );
    if (!out.ImportTaskId) throw new TargetError(`ImportImage for recovery ${idempotencyKey} returned no task id`, true);
    return { importTaskId: out.ImportTaskId };
  }

  async describeImport(importTaskId: string): Promise<ImportStatus> {
    let tasks: ImportImageTask[];
    try {
      const out = await this.call(() => this.ec2.send(new DescribeImportImageTasksCommand({ ImportTaskIds: [importTaskId] })));
      tasks = out.ImportImageTasks ?? [];
    } catch (err) {
      if (isImportTaskNotFound(err)) return notFoundImport(importTaskId);
      throw err;
    }
    const task = tasks.find((t) => t.ImportTaskId === importTaskId);
    if (!task) return notFoundImport(importTaskId);

    const message = task.StatusMessage || undefined;
    switch (task.Status) {
      case "completed": {
        const snapshotIds = (task.SnapshotDetails ?? []).map((s) => s.SnapshotId).filter((id): id is string => !!id);
        if (!task.ImageId) return { state: "failed", progress: 0, message: `import task ${importTaskId} completed without an image id` };
        return { state: "completed", progress: 100, message, imageId: task.ImageId, snapshotIds };
      }
      case "deleting":
      case "deleted":
        return { state: "failed", progress: parseProgress(task.Progress), message: message ?? `import task ${importTaskId} ${task.Status}` };
      default:
        // "active" and anything EC2 may add later: still working.
        return { state: "active", progress: parseProgress(task.Progress), message };
    }
  }

  async cancelImport(importTaskId: string): Promise<void> {
    try {
      await this.call(() => this.ec2.send(new CancelImportTaskCommand({ ImportTaskId: importTaskId })));
    } catch (err) {
      if (isImportTaskNotFound(err)) return;
      const e = err as TargetError;
      if (e.retryable) throw e;
      // EC2 refuses to cancel a task that already finished; which code it uses is not documented,
      // so ask for the task's state instead of matching codes: anything but "active" is done.
      let status: ImportStatus;
      try {
        status = await this.describeImport(importTaskId);
      } catch {
        throw e;
      }
      if (status.state !== "active") return;
      throw e;
    }
  }

  async discardImport(idempotencyKey: string, importTaskId?: string): Promise<string[]> {
    let taskId = importTaskId;
    if (!taskId) {
      // startImport may have created the task before the workflow learned its id: find it by its tag.
      const out = await this.call(() => this.ec2.send(new DescribeImportImageTasksCommand({})));
      taskId = (out.ImportImageTasks ?? []).find((t) => (t.Tags ?? []).some((tag) => tag.Key === "reclo:recovery" && tag.Value === idempotencyKey))?.ImportTaskId;
      if (!taskId) return [];
    }
    const status = await this.describeImport(taskId);
    if (status.state === "completed" && status.imageId) {
      await this.deleteImage(status.imageId, status.snapshotIds);
      return [`deleted image ${status.imageId} of import ${taskId}`];
    }
    if (status.state === "active") {
      await this.cancelImport(taskId);
      return [`cancelled import ${taskId}`];
    }
    return [];
  }

  async deleteImage(imageId: string, snapshotIds?: string[]): Promise<void> {
    let snapshots = snapshotIds;
    if (!snapshots) {
      // Not told which snapshots back the image: read them before the image disappears.
      try {
        const { Images } = await this.call(() => this.ec2.send(new DescribeImagesCommand({ ImageIds: [imageId] })));
        snapshots = (Images ?? [])
          .flatMap((i) => i.BlockDeviceMappings ?? [])
          .map((m) => m.Ebs?.SnapshotId)
          .filter((id): id is string => !!id);
      } catch (err) {
        if (!hasCode(err, "InvalidAMIID.NotFound", "InvalidAMIID.Unavailable")) throw err;
        snapshots = [];
      }
    }
    try {
      await this.call(() => this.ec2.send(new DeregisterImageCommand({ ImageId: imageId })));
    } catch (err) {
      if (!hasCode(err, "InvalidAMIID.NotFound", "InvalidAMIID.Unavailable")) throw err;
    }
    for (const snapshotId of snapshots) {
      try {
        await this.call(() => this.ec2.send(new DeleteSnapshotCommand({ SnapshotId: snapshotId })));
      } catch (err) {
        if (hasCode(err, "InvalidSnapshot.NotFound")) continue;
        // Right after DeregisterImage the snapshot can still be marked as in use by the AMI.
        if (hasCode(err, "InvalidSnapshot.InUse")) throw new TargetError((err as TargetError).message, true, "InvalidSnapshot.InUse");
        throw err;
      }
    }
  }

  async launch(req: LaunchRequest): Promise<LaunchResult> {
    // No ingress here: the machine's access point adds the only rule (its gateway's group, on the
    // declared ports) when it opens. LaunchRequest.allowedCidr no longer opens anything on AWS.
    const securityGroupId = await this.ensureSecurityGroup(req);
    // No outbound traffic unless the recovery asked for internet: a new group allows all egress.
    if (!req.allowInternet) await this.revokeEgress(securityGroupId);

    const run = new RunInstancesCommand({
      ImageId: req.imageId,
      InstanceType: this.opts.instanceType as _InstanceType,
      MinCount: 1,
      MaxCount: 1,
      ClientToken: req.idempotencyKey,
      // A private address only, whatever the subnet's auto-assign setting says.
      NetworkInterfaces: [
        {
          DeviceIndex: 0,
          AssociatePublicIpAddress: false,
          DeleteOnTermination: true,
          Groups: [securityGroupId],
          ...(this.opts.privateSubnetId ? { SubnetId: this.opts.privateSubnetId } : {}),
        },
      ],
      TagSpecifications: [
        {
          ResourceType: "instance",
          Tags: [
            { Key: "Name", Value: req.name },
            { Key: "reclo:recovery", Value: req.idempotencyKey },
            { Key: "reclo:user", Value: req.userId },
          ],
        },
      ],
    });
    let instance: Instance | undefined;
    try {
      // Same ClientToken and same parameters: EC2 answers with the instance the first call launched.
      const out = await this.call(() => this.ec2.send(run));
      instance = out.Instances?.[0];
    } catch (err) {
      // Same ClientToken, other parameters (another worker's configuration, a group recreated in
      // between): EC2 launched an instance under this token before and refuses a second. That
      // instance is this launch's: adopt it rather than lose track of it or launch another.
      if (!hasCode(err, "IdempotentParameterMismatch")) throw err;
      instance = await this.instanceByClientToken(req.idempotencyKey);
      if (!instance)
        throw new TargetError(
          `RunInstances for ${req.idempotencyKey}: EC2 reports an earlier launch with other parameters (IdempotentParameterMismatch), and that instance is gone; not launching another under the same token`,
          false,
          "IdempotentParameterMismatch",
        );
    }
    const instanceId = instance?.InstanceId;
    if (!instanceId) throw new TargetError(`RunInstances for recovery ${req.idempotencyKey} returned no instance`, true);
    const launchedAtMs = instance?.LaunchTime ? new Date(instance.LaunchTime).getTime() : this.now().getTime();
    this.launchedAt.set(instanceId, launchedAtMs);
    return { instanceId, securityGroupId, launchedAtMs };
  }

  /** The live (not terminated) instance launched with this ClientToken, if any. */
  private async instanceByClientToken(clientToken: string): Promise<Instance | undefined> {
    const out = await this.call(() => this.ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: "client-token", Values: [clientToken] }] })));
    const found = (out.Reservations ?? []).flatMap((r) => r.Instances ?? []).filter((i) => i.InstanceId);
    return found.find((i) => !["terminated", "shutting-down"].includes(i.State?.Name ?? ""));
  }

  async describeInstance(instanceId: string, opts: DescribeOptions = {}): Promise<InstanceStatus> {
    let instances: Instance[];
    try {
      const out = await this.call(() => this.ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] })));
      instances = (out.Reservations ?? []).flatMap((r) => r.Instances ?? []);
    } catch (err) {
      if (hasCode(err, "InvalidInstanceID.NotFound")) return { state: this.missingState(instanceId, opts.launchedAtMs) };
      throw err;
    }
    const instance = instances.find((i) => i.InstanceId === instanceId);
    if (!instance) return { state: this.missingState(instanceId, opts.launchedAtMs) };
    return statusOf(instance);
  }

  /**
   * The state sync's read: DescribeInstances filtered by instance id (a filter, unlike InstanceIds,
   * does not fail the whole call on one unknown id), DESCRIBE_BATCH ids a call, following NextToken.
   * An id EC2 no longer lists (terminated long ago) is "lost".
   */
  async describeInstances(instanceIds: string[]): Promise<Map<string, InstanceStatus>> {
    const found = new Map<string, InstanceStatus>();
    const ids = [...new Set(instanceIds)];
    for (let i = 0; i < ids.length; i += DESCRIBE_BATCH) {
      const batch = ids.slice(i, i + DESCRIBE_BATCH);
      let nextToken: string | undefined;
      do {
        const token = nextToken;
        const out = await this.call(() =>
          this.ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: "instance-id", Values: batch }], MaxResults: DESCRIBE_BATCH, ...(token ? { NextToken: token } : {}) })),
        );
        for (const instance of (out.Reservations ?? []).flatMap((r) => r.Instances ?? [])) {
          if (instance.InstanceId && batch.includes(instance.InstanceId)) found.set(instance.InstanceId, statusOf(instance));
        }
        nextToken = out.NextToken || undefined;
      } while (nextToken);
    }
    return new Map(ids.map((id) => [id, found.get(id) ?? { state: this.missingState(id) }]));
  }

  /**
   * DescribeInstanceStatus: EC2's system (host, network) and instance (the guest OS answers ARP on
   * its interface) reachability checks. A pending instance is not listed yet: "initializing".
   */
  async statusChecks(instanceId: string): Promise<StatusChecks> {
    const out = await this.call(() => this.ec2.send(new DescribeInstanceStatusCommand({ InstanceIds: [instanceId], IncludeAllInstances: true })));
    const s = (out.InstanceStatuses ?? []).find((x) => x.InstanceId === instanceId);
    if (!s) return { system: "initializing", instance: "initializing" };
    const state = (v: string | undefined): StatusCheckState =>
      v === "ok" || v === "impaired" || v === "initializing" || v === "insufficient-data" || v === "not-applicable" ? v : "insufficient-data";
    const details = [
      ...(s.SystemStatus?.Details ?? []).map((d) => `system ${d.Name ?? "check"}: ${d.Status ?? "unknown"}`),
      ...(s.InstanceStatus?.Details ?? []).map((d) => `instance ${d.Name ?? "check"}: ${d.Status ?? "unknown"}`),
    ];
    return { system: state(s.SystemStatus?.Status), instance: state(s.InstanceStatus?.Status), ...(details.length ? { details } : {}) };
  }

  async startInstance(instanceId: string): Promise<void> {
    await this.call(() => this.ec2.send(new StartInstancesCommand({ InstanceIds: [instanceId] })));
  }

  /** StopInstances is a graceful (ACPI) shutdown; EC2 itself forces the stop when the guest does not comply. */
  async stopInstance(instanceId: string): Promise<void> {
    await this.call(() => this.ec2.send(new StopInstancesCommand({ InstanceIds: [instanceId] })));
  }

  /**
   * Terminates the machine and its access point's gateway (the gateway whatever the configuration
   * says now: one may have been opened under an earlier one). Their groups are deleted by
   * deleteNetworkGuard once the instances are gone.
   */
  async terminateInstance(instanceId: string): Promise<void> {
    try {
      await this.call(() => this.ec2.send(new TerminateInstancesCommand({ InstanceIds: [instanceId] })));
    } catch (err) {
      if (!hasCode(err, "InvalidInstanceID.NotFound")) throw err;
    }
    await terminateGateways(this.ec2, instanceId);
    this.launchedAt.delete(instanceId);
  }

  /**
   * Removes what a launch under this key created, recorded or not: the machine and its access
   * point's gateway (found by their `reclo:recovery` tag), then their security groups — the
   * machine's first (its rules reference the gateway's). A group is in use until its instances are
   * gone: DependencyViolation is retryable, and a retry finds the instances already terminated.
   */
  async discardLaunch(idempotencyKey: string): Promise<string[]> {
    const removed: string[] = [];
    const live = await instancesTagged(this.ec2, { [TAG_RECOVERY]: idempotencyKey });
    if (live.length) {
      try {
        await this.call(() => this.ec2.send(new TerminateInstancesCommand({ InstanceIds: live.map((i) => i.InstanceId!) })));
      } catch (err) {
        if (!hasCode(err, "InvalidInstanceID.NotFound")) throw err;
      }
      for (const i of live) {
        removed.push(`${(i.Tags ?? []).some((t) => t.Key === TAG_ROLE && t.Value === ROLE_ACCESS_POINT) ? "terminated access point gateway" : "terminated instance"} ${i.InstanceId}`);
        this.launchedAt.delete(i.InstanceId!);
      }
    }
    const groups = await groupsTagged(this.ec2, { [TAG_RECOVERY]: idempotencyKey });
    const machineFirst = [...groups].sort((a, b) => Number(a.GroupName !== `reclo-${idempotencyKey}`) - Number(b.GroupName !== `reclo-${idempotencyKey}`));
    try {
      for (const g of machineFirst) if (await deleteGroup(this.ec2, g.GroupId!)) removed.push(`deleted security group ${g.GroupId}`);
    } catch (err) {
      // The retry will not see the instances terminated now: say so in the error the timeline shows.
      const e = err as TargetError;
      if (removed.length) throw new TargetError(`${removed.join("; ")}; then: ${e.message}`, e.retryable, e.code);
      throw err;
    }
    return removed;
  }

  /**
   * Deletes the machine's security group, then its access point's group (found by its
   * `reclo:instance-sg` tag, so a retry after the first delete still finds it). The machine's group
   * goes first: its rules reference the gateway's, which cannot be deleted while referenced.
   */
  async deleteNetworkGuard(securityGroupId: string): Promise<void> {
    await deleteGroup(this.ec2, securityGroupId);
    for (const g of await groupsTagged(this.ec2, { [TAG_INSTANCE_SG]: securityGroupId, [TAG_ROLE]: ROLE_ACCESS_POINT })) await deleteGroup(this.ec2, g.GroupId!);
  }

  async consoleOutput(instanceId: string): Promise<string> {
    const out = await this.call(() => this.ec2.send(new GetConsoleOutputCommand({ InstanceId: instanceId, Latest: true })));
    return out.Output ? Buffer.from(out.Output, "base64").toString("utf8") : "";
  }

  /**
   * The console screenshot as EC2 returns it: GetConsoleScreenshot's ImageData is a JPEG (converting
   * would need an image decoder we do not ship). The bytes are what counts: a PNG is labelled as one.
   */
  async screenshot(instanceId: string): Promise<ConsoleScreenshot> {
    const out = await this.call(() => this.ec2.send(new GetConsoleScreenshotCommand({ InstanceId: instanceId, WakeUp: true })));
    if (!out.ImageData) throw new TargetError(`no console screenshot of ${instanceId} available yet`, true);
    const bytes = Buffer.from(out.ImageData, "base64");
    return { bytes, contentType: bytes.subarray(0, 8).equals(PNG_SIGNATURE) ? "image/png" : "image/jpeg" };
  }

  private ensureSecurityGroup(req: LaunchRequest): Promise<string> {
    return ensureGroup(this.ec2, this.opts.vpcId, `reclo-${req.idempotencyKey}`, `ReClo recovery ${req.idempotencyKey}`, [
      { Key: TAG_RECOVERY, Value: req.idempotencyKey },
      { Key: "reclo:user", Value: req.userId },
    ]);
  }

  /** Removes every egress rule of the group (the default allow-all ones); idempotent for retries. */
  private async revokeEgress(groupId: string): Promise<void> {
    const out = await this.call(() => this.ec2.send(new DescribeSecurityGroupRulesCommand({ Filters: [{ Name: "group-id", Values: [groupId] }] })));
    const ids = (out?.SecurityGroupRules ?? [])
      .filter((r) => r.IsEgress && r.GroupId === groupId && r.SecurityGroupRuleId)
      .map((r) => r.SecurityGroupRuleId!);
    if (!ids.length) return;
    try {
      await this.call(() => this.ec2.send(new RevokeSecurityGroupEgressCommand({ GroupId: groupId, SecurityGroupRuleIds: ids })));
    } catch (err) {
      // Another attempt revoked them in between.
      if (!hasCode(err, "InvalidSecurityGroupRuleId.NotFound")) throw err;
    }
  }

  /**
   * "Not found": within the grace after the launch, not visible yet ("pending"); after it, "lost".
   * The launch time comes from the caller (the workflow keeps it, so a worker that did not launch
   * the instance — another process, or this one after a restart — honours the same grace), else
   * from this process's own launches.
   */
  private missingState(instanceId: string, launchedAtMs?: number): InstanceProviderState {
    const launched = launchedAtMs ?? this.launchedAt.get(instanceId);
    if (launched !== undefined && this.now().getTime() - launched < LAUNCH_VISIBILITY_GRACE_MS) return "pending";
    return "lost";
  }

  /** Runs one SDK call, turning any failure into a classified TargetError (code = EC2 error code). */
  private call<T>(fn: () => Promise<T>): Promise<T> {
    return ec2Call(fn);
  }
}

function statusOf(instance: Instance): InstanceStatus {
  return {
    state: mapInstanceState(instance.State?.Name),
    ...(instance.PublicIpAddress ? { publicAddress: instance.PublicIpAddress } : {}),
    ...(instance.PrivateIpAddress ? { privateAddress: instance.PrivateIpAddress } : {}),
    ...(instance.Placement?.AvailabilityZone ? { zone: instance.Placement.AvailabilityZone } : {}),
  };
}

function parseProgress(progress: string | undefined): number {
  const n = Number.parseFloat(progress ?? "");
  return Number.isFinite(n) ? Math.min(100, Math.max(0, Math.round(n))) : 0;
}

function notFoundImport(importTaskId: string): ImportStatus {
  return { state: "failed", progress: 0, message: `import task ${importTaskId} not found` };
}

function isImportTaskNotFound(err: unknown): boolean {
  // EC2 answers an unknown import task id with InvalidConversionTaskId (".Malformed" is a bad id, not a missing task).
  return hasCode(err, "InvalidConversionTaskId", "InvalidConversionTaskId.NotFound");
}

/**
 * shutting-down is EC2's irreversible path to terminated (nothing can start the instance again),
 * so it is reported as terminated rather than stopping.
 */
function mapInstanceState(name: string | undefined): InstanceProviderState {
  switch (name) {
    case "pending":
    case "running":
    case "stopping":
    case "stopped":
    case "terminated":
      return name;
    case "shutting-down":
      return "terminated";
    default:
      return "pending";
  }
}
