import { execFile, execFileSync } from "node:child_process";
import { generateWgKeyPair } from "../../src/compute/wireguard-keys";
import fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import {
  AuthorizeSecurityGroupEgressCommand,
  AuthorizeSecurityGroupIngressCommand,
  CancelImportTaskCommand,
  CreateSecurityGroupCommand,
  CreateTagsCommand,
  DeleteSecurityGroupCommand,
  DeleteSnapshotCommand,
  DeregisterImageCommand,
  DescribeImagesCommand,
  DescribeImportImageTasksCommand,
  DescribeInstancesCommand,
  type DescribeInstancesCommandInput,
  DescribeRegionsCommand,
  DescribeSecurityGroupRulesCommand,
  DescribeSecurityGroupsCommand,
  EC2Client,
  EC2ServiceException,
  GetConsoleOutputCommand,
  GetConsoleScreenshotCommand,
  ImportImageCommand,
  RevokeSecurityGroupEgressCommand,
  RevokeSecurityGroupIngressCommand,
  RunInstancesCommand,
  type RunInstancesCommandInput,
  StartInstancesCommand,
  StopInstancesCommand,
  TerminateInstancesCommand,
  type Instance,
  type IpPermission,
  type Tag,
} from "@aws-sdk/client-ec2";
import { mockClient, type AwsClientStub } from "aws-sdk-client-mock";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { GATEWAY_READY_MARKER, gatewayPeersConfScript, peerTags } from "../../src/compute/aws-access";
import { AwsTarget, classifyAwsError, createEc2Client } from "../../src/compute/aws.target";
import { TargetError, type AccessPointSpec } from "../../src/compute/target";

/**
 * An error as @aws-sdk/client-ec2 surfaces it: EC2 has no modelled errors, so the ec2Query protocol
 * throws EC2ServiceException with name = Code = the response's <Code>, message = <Message>, and
 * $fault "client" below HTTP 500, "server" from 500 (checked against a fake endpoint below).
 */
function ec2Error(code: string, message: string, status = 400, fault?: "client" | "server"): EC2ServiceException {
  const err = new EC2ServiceException({
    name: code,
    message,
    $fault: fault ?? (status < 500 ? "client" : "server"),
    $metadata: { httpStatusCode: status, requestId: "req-1", attempts: 1, totalRetryDelay: 0 },
  });
  return Object.assign(err, { Code: code });
}

async function rejection(p: Promise<unknown>): Promise<TargetError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TargetError);
  return err as TargetError;
}

const RID = "4f1c2b9e-0d7a-4c55-9a1e-3b2f6c8d9e01";
const image = { bucket: "reclo-imports", key: `recoveries/${RID}/disk.raw`, sizeBytes: 64 * 2 ** 30 };

describe("AwsTarget (mocked EC2)", () => {
  let ec2Mock: AwsClientStub<EC2Client>;
  let ec2: EC2Client;
  let clock: Date;
  let target: AwsTarget;

  /** Inputs of every call of one command, in order. */
  function inputs<I extends object>(command: abstract new (input: I) => unknown): I[] {
    return ec2Mock.commandCalls(command as never).map((c) => c.args[0].input as I);
  }

  beforeEach(() => {
    ec2Mock = mockClient(EC2Client);
    ec2 = new EC2Client({ region: "eu-central-1", maxAttempts: 1, credentials: { accessKeyId: "test", secretAccessKey: "test" } });
    clock = new Date("2030-01-01T00:00:00Z");
    target = new AwsTarget(ec2, { importRoleName: "vmimport", instanceType: "t3.medium", privateSubnetId: "subnet-0abc", vpcId: "vpc-0def", now: () => clock });
  });

  afterEach(() => {
    ec2Mock.restore();
  });

  it("is the AWS target", () => {
    expect(target.kind).toBe("AWS");
  });

  describe("checkAvailable", () => {
    it("calls DescribeRegions", async () => {
      ec2Mock.on(DescribeRegionsCommand).resolves({ Regions: [{ RegionName: "eu-central-1" }] });
      await target.checkAvailable();
      expect(inputs(DescribeRegionsCommand)).toEqual([{}]);
    });

    it("UnauthorizedOperation → non-retryable, naming the credentials and the switch", async () => {
      ec2Mock.on(DescribeRegionsCommand).rejects(ec2Error("UnauthorizedOperation", "You are not authorized to perform this operation.", 403));
      const err = await rejection(target.checkAvailable());
      expect(err.retryable).toBe(false);
      expect(err.code).toBe("UnauthorizedOperation");
      expect(err.message).toContain("UnauthorizedOperation: You are not authorized to perform this operation.");
      expect(err.message).toMatch(/AWS credentials .*set AWS_ACCESS_KEY_ID\/AWS_SECRET_ACCESS_KEY.*or disable AWS_RECOVERY_ENABLED/);
    });

    it("missing credentials (SDK-side CredentialsProviderError) → non-retryable with the hint", async () => {
      ec2Mock.on(DescribeRegionsCommand).rejects(Object.assign(new Error("Could not load credentials from any providers"), { name: "CredentialsProviderError", tryNextLink: false }));
      const err = await rejection(target.checkAvailable());
      expect(err.retryable).toBe(false);
      expect(err.message).toMatch(/CredentialsProviderError: Could not load credentials.*AWS_ACCESS_KEY_ID.*AWS_RECOVERY_ENABLED/);
    });

    it("AuthFailure → non-retryable with the hint", async () => {
      ec2Mock.on(DescribeRegionsCommand).rejects(ec2Error("AuthFailure", "AWS was not able to validate the provided access credentials", 401));
      const err = await rejection(target.checkAvailable());
      expect(err.retryable).toBe(false);
      expect(err.message).toMatch(/^AWS credentials .*AuthFailure: AWS was not able to validate/);
    });

    it("a network error stays retryable (no hint)", async () => {
      ec2Mock.on(DescribeRegionsCommand).rejects(Object.assign(new Error("connect ETIMEDOUT 52.94.0.1:443"), { code: "ETIMEDOUT" }));
      const err = await rejection(target.checkAvailable());
      expect(err.retryable).toBe(true);
      expect(err.message).toBe("ETIMEDOUT: connect ETIMEDOUT 52.94.0.1:443");
    });
  });

  describe("import", () => {
    it("sends ImportImage with RAW from the bucket, the role and ClientToken = recovery id (same token on a retry)", async () => {
      ec2Mock.on(ImportImageCommand).resolves({ ImportTaskId: "import-ami-0123456789abcdef0", Status: "active" });
      expect(await target.startImport(RID, image)).toEqual({ importTaskId: "import-ami-0123456789abcdef0" });
      expect(await target.startImport(RID, image)).toEqual({ importTaskId: "import-ami-0123456789abcdef0" });
      const expected = {
        ClientToken: RID,
        RoleName: "vmimport",
        Description: `ReClo recovery ${RID}`,
        DiskContainers: [{ Format: "RAW", UserBucket: { S3Bucket: "reclo-imports", S3Key: `recoveries/${RID}/disk.raw` } }],
        TagSpecifications: [{ ResourceType: "import-image-task", Tags: [{ Key: "reclo:recovery", Value: RID }] }],
      };
      expect(inputs(ImportImageCommand)).toEqual([expected, expected]);
    });

    it("reports progress active 10 → 45 → completed 100 with the AMI and its snapshots", async () => {
      const id = "import-ami-0123456789abcdef0";
      ec2Mock
        .on(DescribeImportImageTasksCommand)
        .resolvesOnce({ ImportImageTasks: [{ ImportTaskId: id, Status: "active", StatusMessage: "pending", Progress: "10" }] })
        .resolvesOnce({ ImportImageTasks: [{ ImportTaskId: id, Status: "active", StatusMessage: "converting", Progress: "45" }] })
        .resolvesOnce({
          ImportImageTasks: [
            {
              ImportTaskId: id,
              Status: "completed",
              ImageId: "ami-0aaaabbbbccccdddd",
              SnapshotDetails: [{ SnapshotId: "snap-01111111111111111" }, { SnapshotId: "snap-02222222222222222" }],
            },
          ],
        });
      expect(await target.describeImport(id)).toEqual({ state: "active", progress: 10, message: "pending" });
      expect(await target.describeImport(id)).toEqual({ state: "active", progress: 45, message: "converting" });
      expect(await target.describeImport(id)).toEqual({
        state: "completed",
        progress: 100,
        imageId: "ami-0aaaabbbbccccdddd",
        snapshotIds: ["snap-01111111111111111", "snap-02222222222222222"],
      });
      expect(inputs(DescribeImportImageTasksCommand)).toEqual([{ ImportTaskIds: [id] }, { ImportTaskIds: [id] }, { ImportTaskIds: [id] }]);
    });

    it("an active task without Progress is at 0", async () => {
      ec2Mock.on(DescribeImportImageTasksCommand).resolves({ ImportImageTasks: [{ ImportTaskId: "import-ami-1", Status: "active" }] });
      expect(await target.describeImport("import-ami-1")).toEqual({ state: "active", progress: 0 });
    });

    it("a deleted task is failed with its StatusMessage", async () => {
      ec2Mock.on(DescribeImportImageTasksCommand).resolves({
        ImportImageTasks: [{ ImportTaskId: "import-ami-2", Status: "deleted", StatusMessage: "ClientError: Disk validation failed" }],
      });
      expect(await target.describeImport("import-ami-2")).toEqual({ state: "failed", progress: 0, message: "ClientError: Disk validation failed" });
    });

    it("a deleting task is failed too", async () => {
      ec2Mock.on(DescribeImportImageTasksCommand).resolves({ ImportImageTasks: [{ ImportTaskId: "import-ami-3", Status: "deleting", Progress: "30" }] });
      expect(await target.describeImport("import-ami-3")).toEqual({ state: "failed", progress: 30, message: "import task import-ami-3 deleting" });
    });

    it("a task that is not found is failed (empty answer or InvalidConversionTaskId)", async () => {
      ec2Mock
        .on(DescribeImportImageTasksCommand)
        .resolvesOnce({ ImportImageTasks: [] })
        .rejectsOnce(ec2Error("InvalidConversionTaskId", "The import task 'import-ami-4' does not exist"));
      const notFound = { state: "failed", progress: 0, message: "import task import-ami-4 not found" };
      expect(await target.describeImport("import-ami-4")).toEqual(notFound);
      expect(await target.describeImport("import-ami-4")).toEqual(notFound);
    });

    it("cancels an active task", async () => {
      ec2Mock.on(CancelImportTaskCommand).resolves({ ImportTaskId: "import-ami-5", PreviousState: "active", State: "deleting" });
      await target.cancelImport("import-ami-5");
      expect(inputs(CancelImportTaskCommand)).toEqual([{ ImportTaskId: "import-ami-5" }]);
    });

    it("cancelling an unknown task is a no-op", async () => {
      ec2Mock.on(CancelImportTaskCommand).rejects(ec2Error("InvalidConversionTaskId", "The import task 'import-ami-6' does not exist"));
      await target.cancelImport("import-ami-6");
      expect(inputs(CancelImportTaskCommand)).toEqual([{ ImportTaskId: "import-ami-6" }]);
      expect(inputs(DescribeImportImageTasksCommand)).toEqual([]);
    });

    it("cancelling a completed or already cancelled task is a no-op (EC2 refuses; the task is not active)", async () => {
      ec2Mock.on(CancelImportTaskCommand).rejects(ec2Error("IncorrectState", "The import task is already completed"));
      ec2Mock
        .on(DescribeImportImageTasksCommand)
        .resolvesOnce({ ImportImageTasks: [{ ImportTaskId: "import-ami-7", Status: "completed", ImageId: "ami-1", SnapshotDetails: [] }] })
        .resolvesOnce({ ImportImageTasks: [{ ImportTaskId: "import-ami-7", Status: "deleted", StatusMessage: "user cancelled" }] });
      await target.cancelImport("import-ami-7");
      await target.cancelImport("import-ami-7");
      expect(inputs(CancelImportTaskCommand)).toEqual([{ ImportTaskId: "import-ami-7" }, { ImportTaskId: "import-ami-7" }]);
      expect(inputs(DescribeImportImageTasksCommand)).toEqual([{ ImportTaskIds: ["import-ami-7"] }, { ImportTaskIds: ["import-ami-7"] }]);
    });

    it("a refused cancel of a task that is still active is an error", async () => {
      ec2Mock.on(CancelImportTaskCommand).rejects(ec2Error("InvalidParameterValue", "Invalid import task id"));
      ec2Mock.on(DescribeImportImageTasksCommand).resolves({ ImportImageTasks: [{ ImportTaskId: "import-ami-8", Status: "active", Progress: "5" }] });
      const err = await rejection(target.cancelImport("import-ami-8"));
      expect(err).toMatchObject({ retryable: false, code: "InvalidParameterValue", message: "InvalidParameterValue: Invalid import task id" });
    });

    it("a throttled cancel is retryable without describing the task", async () => {
      ec2Mock.on(CancelImportTaskCommand).rejects(ec2Error("RequestLimitExceeded", "Request limit exceeded.", 503));
      const err = await rejection(target.cancelImport("import-ami-9"));
      expect(err.retryable).toBe(true);
      expect(inputs(DescribeImportImageTasksCommand)).toEqual([]);
    });
  });

  describe("discardImport", () => {
    it("finds a task by its recovery tag when its id was never recorded, and deletes the finished import's AMI and snapshots", async () => {
      ec2Mock
        .on(DescribeImportImageTasksCommand, {})
        .resolves({ ImportImageTasks: [{ ImportTaskId: "import-ami-other", Status: "active", Tags: [{ Key: "reclo:recovery", Value: "rec-other" }] }, { ImportTaskId: "import-ami-20", Status: "completed", Tags: [{ Key: "reclo:recovery", Value: "rec-20" }] }] });
      ec2Mock.on(DescribeImportImageTasksCommand, { ImportTaskIds: ["import-ami-20"] }).resolves({ ImportImageTasks: [{ ImportTaskId: "import-ami-20", Status: "completed", ImageId: "ami-20", SnapshotDetails: [{ SnapshotId: "snap-20" }] }] });
      ec2Mock.on(DeregisterImageCommand).resolves({});
      ec2Mock.on(DeleteSnapshotCommand).resolves({});
      expect(await target.discardImport("rec-20")).toEqual(["deleted image ami-20 of import import-ami-20"]);
      expect(inputs(DeregisterImageCommand)).toEqual([{ ImageId: "ami-20" }]);
      expect(inputs(DeleteSnapshotCommand)).toEqual([{ SnapshotId: "snap-20" }]);
      expect(inputs(CancelImportTaskCommand)).toEqual([]);
    });

    it("cancels a recorded task that is still active; no task at all is a no-op", async () => {
      ec2Mock.on(DescribeImportImageTasksCommand, {}).resolves({ ImportImageTasks: [] });
      ec2Mock.on(DescribeImportImageTasksCommand, { ImportTaskIds: ["import-ami-21"] }).resolves({ ImportImageTasks: [{ ImportTaskId: "import-ami-21", Status: "active", Progress: "40" }] });
      ec2Mock.on(CancelImportTaskCommand).resolves({ ImportTaskId: "import-ami-21", State: "deleting" });
      expect(await target.discardImport("rec-21", "import-ami-21")).toEqual(["cancelled import import-ami-21"]);
      expect(inputs(CancelImportTaskCommand)).toEqual([{ ImportTaskId: "import-ami-21" }]);
      expect(await target.discardImport("rec-none")).toEqual([]);
      expect(inputs(DeregisterImageCommand)).toEqual([]);
    });
  });

  describe("deleteImage", () => {
    it("deregisters the AMI, then deletes each snapshot", async () => {
      ec2Mock.on(DeregisterImageCommand).resolves({});
      ec2Mock.on(DeleteSnapshotCommand).resolves({});
      await target.deleteImage("ami-0aaaabbbbccccdddd", ["snap-01111111111111111", "snap-02222222222222222"]);
      expect(inputs(DeregisterImageCommand)).toEqual([{ ImageId: "ami-0aaaabbbbccccdddd" }]);
      expect(inputs(DeleteSnapshotCommand)).toEqual([{ SnapshotId: "snap-01111111111111111" }, { SnapshotId: "snap-02222222222222222" }]);
      const calls = ec2Mock.calls().map((c) => (c.args[0] as object).constructor.name);
      expect(calls).toEqual(["DeregisterImageCommand", "DeleteSnapshotCommand", "DeleteSnapshotCommand"]);
      expect(inputs(DescribeImagesCommand)).toEqual([]);
    });

    it("is a no-op for an AMI and snapshots that are already gone", async () => {
      ec2Mock.on(DeregisterImageCommand).rejects(ec2Error("InvalidAMIID.NotFound", "The image id '[ami-0aaaabbbbccccdddd]' does not exist"));
      ec2Mock
        .on(DeleteSnapshotCommand)
        .rejectsOnce(ec2Error("InvalidSnapshot.NotFound", "The snapshot 'snap-01111111111111111' does not exist."))
        .resolvesOnce({});
      await target.deleteImage("ami-0aaaabbbbccccdddd", ["snap-01111111111111111", "snap-02222222222222222"]);
      expect(inputs(DeleteSnapshotCommand)).toEqual([{ SnapshotId: "snap-01111111111111111" }, { SnapshotId: "snap-02222222222222222" }]);
    });

    it("looks the snapshots up when not given", async () => {
      ec2Mock.on(DescribeImagesCommand).resolves({
        Images: [{ ImageId: "ami-1", BlockDeviceMappings: [{ DeviceName: "/dev/sda1", Ebs: { SnapshotId: "snap-0a" } }, { DeviceName: "/dev/sdb", Ebs: { SnapshotId: "snap-0b" } }] }],
      });
      ec2Mock.on(DeregisterImageCommand).resolves({});
      ec2Mock.on(DeleteSnapshotCommand).resolves({});
      await target.deleteImage("ami-1");
      expect(inputs(DescribeImagesCommand)).toEqual([{ ImageIds: ["ami-1"] }]);
      expect(inputs(DeregisterImageCommand)).toEqual([{ ImageId: "ami-1" }]);
      expect(inputs(DeleteSnapshotCommand)).toEqual([{ SnapshotId: "snap-0a" }, { SnapshotId: "snap-0b" }]);
    });

    it("other errors are classified (InvalidAMIID.Malformed → non-retryable)", async () => {
      ec2Mock.on(DeregisterImageCommand).rejects(ec2Error("InvalidAMIID.Malformed", 'Invalid id: "ami-nope"'));
      const err = await rejection(target.deleteImage("ami-nope", []));
      expect(err).toMatchObject({ retryable: false, code: "InvalidAMIID.Malformed", message: 'InvalidAMIID.Malformed: Invalid id: "ami-nope"' });
    });
  });

  describe("launch", () => {
    const req = { idempotencyKey: RID, userId: "user-42", imageId: "ami-0aaaabbbbccccdddd", name: "fileserver-recovered", allowedCidr: "203.0.113.0/24" };
    const sgInput = {
      GroupName: `reclo-${RID}`,
      Description: `ReClo recovery ${RID}`,
      VpcId: "vpc-0def",
      TagSpecifications: [
        {
          ResourceType: "security-group",
          Tags: [
            { Key: "reclo:recovery", Value: RID },
            { Key: "reclo:user", Value: "user-42" },
          ],
        },
      ],
    };
    const runInput = {
      ImageId: "ami-0aaaabbbbccccdddd",
      InstanceType: "t3.medium",
      MinCount: 1,
      MaxCount: 1,
      ClientToken: RID,
      NetworkInterfaces: [{ DeviceIndex: 0, AssociatePublicIpAddress: false, DeleteOnTermination: true, Groups: ["sg-0123"], SubnetId: "subnet-0abc" }],
      TagSpecifications: [
        {
          ResourceType: "instance",
          Tags: [
            { Key: "Name", Value: "fileserver-recovered" },
            { Key: "reclo:recovery", Value: RID },
            { Key: "reclo:user", Value: "user-42" },
          ],
        },
      ],
    };

    it("creates the security group with no ingress at all (no CIDR rule: the access point adds the only one), and runs one instance in the private subnet without a public address, ClientToken = recovery id", async () => {
      ec2Mock.on(CreateSecurityGroupCommand).resolves({ GroupId: "sg-0123" });
      ec2Mock.on(RunInstancesCommand).resolves({ Instances: [{ InstanceId: "i-0feedface0000001" }] });
      expect(await target.launch(req)).toEqual({ instanceId: "i-0feedface0000001", securityGroupId: "sg-0123", launchedAtMs: clock.getTime() });
      expect(inputs(CreateSecurityGroupCommand)).toEqual([sgInput]);
      expect(inputs(AuthorizeSecurityGroupIngressCommand)).toEqual([]);
      expect(inputs(RunInstancesCommand)).toEqual([runInput]);
      // EC2 refuses SubnetId/SecurityGroupIds beside NetworkInterfaces (InvalidParameterCombination).
      expect(inputs(RunInstancesCommand)[0]).not.toHaveProperty("SecurityGroupIds");
      expect(inputs(RunInstancesCommand)[0]).not.toHaveProperty("SubnetId");
      expect(inputs(DescribeSecurityGroupsCommand)).toEqual([]);
    });

    it("reuses an existing group (InvalidGroup.Duplicate) on a retry", async () => {
      ec2Mock.on(CreateSecurityGroupCommand).rejects(ec2Error("InvalidGroup.Duplicate", `The security group 'reclo-${RID}' already exists for VPC 'vpc-0def'`));
      ec2Mock.on(DescribeSecurityGroupsCommand).resolves({ SecurityGroups: [{ GroupId: "sg-0123", GroupName: `reclo-${RID}`, VpcId: "vpc-0def" }] });
      ec2Mock.on(RunInstancesCommand).resolves({ Instances: [{ InstanceId: "i-0feedface0000001" }] });
      expect(await target.launch(req)).toEqual({ instanceId: "i-0feedface0000001", securityGroupId: "sg-0123", launchedAtMs: clock.getTime() });
      expect(inputs(DescribeSecurityGroupsCommand)).toEqual([
        {
          Filters: [
            { Name: "group-name", Values: [`reclo-${RID}`] },
            { Name: "vpc-id", Values: ["vpc-0def"] },
          ],
        },
      ]);
      expect(inputs(RunInstancesCommand)).toEqual([runInput]);
    });

    it("without subnet/VPC configured: no VpcId, no SubnetId, lookup by name only", async () => {
      const plain = new AwsTarget(ec2, { importRoleName: "vmimport", instanceType: "m5.large" });
      ec2Mock.on(CreateSecurityGroupCommand).rejects(ec2Error("InvalidGroup.Duplicate", "already exists"));
      ec2Mock.on(DescribeSecurityGroupsCommand).resolves({ SecurityGroups: [{ GroupId: "sg-0999", GroupName: `reclo-${RID}` }] });
      ec2Mock.on(AuthorizeSecurityGroupIngressCommand).resolves({ Return: true });
      ec2Mock.on(RunInstancesCommand).resolves({ Instances: [{ InstanceId: "i-2" }] });
      expect(await plain.launch(req)).toEqual({ instanceId: "i-2", securityGroupId: "sg-0999", launchedAtMs: expect.any(Number) });
      const { VpcId: _vpc, ...sgWithoutVpc } = sgInput;
      expect(inputs(CreateSecurityGroupCommand)).toEqual([sgWithoutVpc]);
      expect(inputs(DescribeSecurityGroupsCommand)).toEqual([{ Filters: [{ Name: "group-name", Values: [`reclo-${RID}`] }] }]);
      expect(inputs(RunInstancesCommand)).toEqual([
        { ...runInput, InstanceType: "m5.large", NetworkInterfaces: [{ DeviceIndex: 0, AssociatePublicIpAddress: false, DeleteOnTermination: true, Groups: ["sg-0999"] }] },
      ]);
      expect(plain.access).toBeUndefined(); // no gateway configured: no private access
    });

    it("revokes the group's default allow-all egress (IPv4 and IPv6) unless the recovery allows internet", async () => {
      ec2Mock.on(CreateSecurityGroupCommand).resolves({ GroupId: "sg-0123" });
      ec2Mock.on(AuthorizeSecurityGroupIngressCommand).resolves({ Return: true });
      ec2Mock.on(DescribeSecurityGroupRulesCommand).resolves({
        SecurityGroupRules: [
          { SecurityGroupRuleId: "sgr-egress4", GroupId: "sg-0123", IsEgress: true, IpProtocol: "-1", CidrIpv4: "0.0.0.0/0" },
          { SecurityGroupRuleId: "sgr-egress6", GroupId: "sg-0123", IsEgress: true, IpProtocol: "-1", CidrIpv6: "::/0" },
          { SecurityGroupRuleId: "sgr-rdp", GroupId: "sg-0123", IsEgress: false, IpProtocol: "tcp", FromPort: 3389, ToPort: 3389, CidrIpv4: "203.0.113.0/24" },
        ],
      });
      ec2Mock.on(RevokeSecurityGroupEgressCommand).resolves({ Return: true });
      ec2Mock.on(RunInstancesCommand).resolves({ Instances: [{ InstanceId: "i-0feedface0000001" }] });

      await target.launch(req);
      expect(inputs(DescribeSecurityGroupRulesCommand)).toEqual([{ Filters: [{ Name: "group-id", Values: ["sg-0123"] }] }]);
      expect(inputs(RevokeSecurityGroupEgressCommand)).toEqual([{ GroupId: "sg-0123", SecurityGroupRuleIds: ["sgr-egress4", "sgr-egress6"] }]);
      // Egress is closed before the machine exists.
      const order = ec2Mock.calls().map((c) => (c.args[0] as object).constructor.name);
      expect(order.indexOf("RevokeSecurityGroupEgressCommand")).toBeLessThan(order.indexOf("RunInstancesCommand"));

      // A retry finds the rules gone (revoked in between): still fine.
      ec2Mock.on(RevokeSecurityGroupEgressCommand).rejects(ec2Error("InvalidSecurityGroupRuleId.NotFound", "The security group rule ID 'sgr-egress4' does not exist"));
      expect(await target.launch(req)).toEqual({ instanceId: "i-0feedface0000001", securityGroupId: "sg-0123", launchedAtMs: clock.getTime() });

      // allowInternet: the default egress stays.
      ec2Mock.resetHistory();
      await target.launch({ ...req, allowInternet: true });
      expect(inputs(DescribeSecurityGroupRulesCommand)).toEqual([]);
      expect(inputs(RevokeSecurityGroupEgressCommand)).toEqual([]);
      expect(inputs(RunInstancesCommand)).toHaveLength(1);
    });

    it("an allowed CIDR (IPv4 or IPv6) opens nothing any more, and an empty one is not an error", async () => {
      ec2Mock.on(CreateSecurityGroupCommand).resolves({ GroupId: "sg-0123" });
      ec2Mock.on(RunInstancesCommand).resolves({ Instances: [{ InstanceId: "i-3" }] });
      await target.launch({ ...req, allowedCidr: "2001:db8::/64" });
      await target.launch({ ...req, allowedCidr: "" });
      expect(inputs(AuthorizeSecurityGroupIngressCommand)).toEqual([]);
      expect(inputs(RunInstancesCommand).map((r) => r.NetworkInterfaces?.[0]?.AssociatePublicIpAddress)).toEqual([false, false]);
    });

    it("a bad parameter from RunInstances is non-retryable with EC2's message", async () => {
      ec2Mock.on(CreateSecurityGroupCommand).resolves({ GroupId: "sg-0123" });
      ec2Mock.on(AuthorizeSecurityGroupIngressCommand).resolves({ Return: true });
      ec2Mock.on(RunInstancesCommand).rejects(ec2Error("InvalidParameterValue", "Invalid value 't3.gigantic' for InstanceType."));
      const err = await rejection(target.launch(req));
      expect(err).toMatchObject({ retryable: false, code: "InvalidParameterValue", message: "InvalidParameterValue: Invalid value 't3.gigantic' for InstanceType." });
    });

    it("throttled RunInstances is retryable", async () => {
      ec2Mock.on(CreateSecurityGroupCommand).resolves({ GroupId: "sg-0123" });
      ec2Mock.on(AuthorizeSecurityGroupIngressCommand).resolves({ Return: true });
      ec2Mock.on(RunInstancesCommand).rejects(ec2Error("RequestLimitExceeded", "Request limit exceeded.", 503, "client"));
      const err = await rejection(target.launch(req));
      expect(err).toMatchObject({ retryable: true, code: "RequestLimitExceeded", message: "RequestLimitExceeded: Request limit exceeded." });
    });
  });

  /**
   * EC2 as a small scripted model of its documented rules rather than canned answers:
   * RunInstances with a ClientToken already used → the same instance if the parameters are the same,
   * IdempotentParameterMismatch if they differ (never a second instance); DescribeInstances by id
   * answers InvalidInstanceID.NotFound for an instance launched less than `visibleAfterMs` ago (its
   * eventual consistency), and with filters pages through MaxResults/NextToken.
   */
  function scriptedEc2(opts: { visibleAfterMs?: number; pageSize?: number } = {}) {
    type Fake = { id: string; token?: string; params: string; state: string; launchTime: Date };
    const fleet: Fake[] = [];
    const paramsOf = (i: Record<string, unknown>) => JSON.stringify({ ...i, ClientToken: undefined });
    const visible = (f: Fake) => clock.getTime() - f.launchTime.getTime() >= (opts.visibleAfterMs ?? 0);
    const view = (f: Fake) => ({ InstanceId: f.id, State: { Name: f.state }, LaunchTime: f.launchTime, ClientToken: f.token });
    ec2Mock.on(CreateSecurityGroupCommand).resolves({ GroupId: "sg-0123" });
    ec2Mock.on(AuthorizeSecurityGroupIngressCommand).resolves({ Return: true });
    ec2Mock.on(RunInstancesCommand).callsFake((input: Record<string, unknown>) => {
      const earlier = fleet.find((f) => input.ClientToken && f.token === input.ClientToken);
      if (earlier) {
        if (earlier.params !== paramsOf(input))
          throw ec2Error("IdempotentParameterMismatch", "The client token you have provided is associated with a resource that is already deleted or has different parameters.");
        return { Instances: [view(earlier)] };
      }
      const f: Fake = { id: `i-0${String(fleet.length + 1).padStart(16, "0")}`, token: input.ClientToken as string | undefined, params: paramsOf(input), state: "pending", launchTime: clock };
      fleet.push(f);
      return { Instances: [view(f)] };
    });
    ec2Mock.on(DescribeInstancesCommand).callsFake((input: { InstanceIds?: string[]; Filters?: { Name: string; Values: string[] }[]; MaxResults?: number; NextToken?: string }) => {
      if (input.InstanceIds) {
        const found = input.InstanceIds.map((id) => fleet.find((f) => f.id === id && visible(f)));
        const missing = input.InstanceIds.find((_, n) => !found[n]);
        if (missing) throw ec2Error("InvalidInstanceID.NotFound", `The instance ID '${missing}' does not exist`);
        return { Reservations: [{ Instances: found.map((f) => view(f!)) }] };
      }
      expect(input.Filters?.length).toBeGreaterThan(0);
      let matching = fleet.filter(visible);
      for (const filter of input.Filters ?? []) {
        if (filter.Name === "instance-id") matching = matching.filter((f) => filter.Values.includes(f.id));
        else if (filter.Name === "client-token") matching = matching.filter((f) => f.token && filter.Values.includes(f.token));
        else throw ec2Error("InvalidParameterValue", `The filter '${filter.Name}' is invalid`);
      }
      const start = input.NextToken ? Number(input.NextToken) : 0;
      const size = Math.min(input.MaxResults ?? 1000, opts.pageSize ?? 1000);
      const page = matching.slice(start, start + size);
      const next = start + size < matching.length ? String(start + size) : undefined;
      // EC2 groups a page's instances in reservations; one per instance here.
      return { Reservations: page.map((f) => ({ Instances: [view(f)] })), ...(next ? { NextToken: next } : {}) };
    });
    return { fleet };
  }

  describe("launch idempotency (EC2's ClientToken rules)", () => {
    const req = { idempotencyKey: RID, userId: "user-42", imageId: "ami-0aaaabbbbccccdddd", name: "fileserver-recovered", allowedCidr: "203.0.113.0/24" };

    it("same ClientToken and same parameters (a retry, on this or another worker): the same instance, never a second", async () => {
      const ec2Fake = scriptedEc2();
      const first = await target.launch(req);
      clock = new Date(clock.getTime() + 30_000);
      const otherWorker = new AwsTarget(ec2, { importRoleName: "vmimport", instanceType: "t3.medium", privateSubnetId: "subnet-0abc", vpcId: "vpc-0def", now: () => clock });
      const again = await otherWorker.launch(req);
      expect(again).toEqual(first);
      // The launch time is the first launch's (EC2's LaunchTime), not the retry's.
      expect(again.launchedAtMs).toBe(new Date("2030-01-01T00:00:00Z").getTime());
      expect(ec2Fake.fleet).toHaveLength(1);
      expect(inputs(RunInstancesCommand).map((i) => i.ClientToken)).toEqual([RID, RID]);
    });

    it("same ClientToken, other parameters: EC2 refuses (IdempotentParameterMismatch); the adapter adopts the first instance instead of losing it or launching another", async () => {
      const ec2Fake = scriptedEc2();
      const first = await target.launch(req);
      // Another worker configured with another instance type retries the same recovery's launch.
      const otherConfig = new AwsTarget(ec2, { importRoleName: "vmimport", instanceType: "t3.large", privateSubnetId: "subnet-0abc", vpcId: "vpc-0def", now: () => clock });
      const adopted = await otherConfig.launch(req);
      expect(adopted).toEqual(first);
      expect(ec2Fake.fleet).toHaveLength(1);
      expect(inputs(RunInstancesCommand).map((i) => i.InstanceType)).toEqual(["t3.medium", "t3.large"]);
      expect(inputs(DescribeInstancesCommand)).toEqual([{ Filters: [{ Name: "client-token", Values: [RID] }] }]);
    });

    it("a mismatch whose first instance is already terminated is a non-retryable IdempotentParameterMismatch, and still no second instance", async () => {
      const ec2Fake = scriptedEc2();
      await target.launch(req);
      ec2Fake.fleet[0]!.state = "terminated";
      const err = await rejection(target.launch({ ...req, imageId: "ami-0other" }));
      expect(err).toMatchObject({ retryable: false, code: "IdempotentParameterMismatch" });
      expect(err.message).toContain("not launching another");
      expect(ec2Fake.fleet).toHaveLength(1);
    });

    it("EC2's IdempotentParameterMismatch alone (no adoption possible) would be non-retryable: the classification agrees", () => {
      expect(classifyAwsError(ec2Error("IdempotentParameterMismatch", "different parameters"))).toMatchObject({ retryable: false, code: "IdempotentParameterMismatch" });
    });
  });

  describe("eventual consistency after launch, across workers", () => {
    const req = { idempotencyKey: RID, userId: "u", imageId: "ami-1", name: "n", allowedCidr: "192.0.2.1/32" };

    it("a worker that did not launch the instance (another process, or a restart) honours the launch's grace when given its launch time", async () => {
      scriptedEc2({ visibleAfterMs: 20_000 });
      const { instanceId, launchedAtMs } = await target.launch(req);
      clock = new Date(clock.getTime() + 5_000);
      const restarted = new AwsTarget(ec2, { importRoleName: "vmimport", instanceType: "t3.medium", now: () => clock });
      // Not visible yet: with the workflow's launch time it is pending; without it, it would be lost.
      expect(await restarted.describeInstance(instanceId, { launchedAtMs })).toEqual({ state: "pending" });
      expect(await new AwsTarget(ec2, { importRoleName: "vmimport", instanceType: "t3.medium", now: () => clock }).describeInstance(instanceId)).toEqual({ state: "lost" });
      clock = new Date(clock.getTime() + 20_000);
      expect(await restarted.describeInstance(instanceId, { launchedAtMs })).toEqual({ state: "pending" }); // visible now: EC2's own state
    });

    it("past the grace, not found is lost even with the launch time", async () => {
      ec2Mock.on(DescribeInstancesCommand).rejects(ec2Error("InvalidInstanceID.NotFound", "The instance ID 'i-0gone' does not exist"));
      const launchedAtMs = clock.getTime();
      clock = new Date(launchedAtMs + 2 * 60_000 + 1);
      expect(await target.describeInstance("i-0gone", { launchedAtMs })).toEqual({ state: "lost" });
      clock = new Date(launchedAtMs + 60_000);
      expect(await target.describeInstance("i-0gone", { launchedAtMs })).toEqual({ state: "pending" });
    });
  });

  describe("describeInstances (the state sync's batched read)", () => {
    it("reads many instances with paginated, filtered DescribeInstances calls (100 ids a batch); ids EC2 no longer lists are lost", async () => {
      // EC2 may answer a batch in several pages (NextToken): pages of 40 here.
      const ec2Fake = scriptedEc2({ pageSize: 40 });
      for (let n = 0; n < 230; n++) ec2Fake.fleet.push({ id: `i-${n}`, params: "{}", state: n % 3 === 0 ? "stopped" : "running", launchTime: new Date(0) });
      const ids = [...ec2Fake.fleet.map((f) => f.id), "i-gone-1", "i-gone-2"];
      const states = await target.describeInstances(ids);
      expect(states.size).toBe(232);
      expect(states.get("i-0")).toEqual({ state: "stopped" });
      expect(states.get("i-1")).toEqual({ state: "running" });
      expect(states.get("i-229")).toEqual({ state: "running" });
      expect(states.get("i-gone-1")).toEqual({ state: "lost" });
      const calls = inputs(DescribeInstancesCommand) as DescribeInstancesCommandInput[];
      // No InstanceIds (one unknown id would fail the whole call): a filter of at most 100 ids.
      expect(calls.every((c) => !c.InstanceIds && c.Filters?.[0]?.Name === "instance-id" && c.Filters[0].Values!.length <= 100)).toBe(true);
      expect(calls.map((c) => [c.Filters![0]!.Values![0], c.NextToken])).toEqual([
        ["i-0", undefined],
        ["i-0", "40"],
        ["i-0", "80"],
        ["i-100", undefined],
        ["i-100", "40"],
        ["i-100", "80"],
        ["i-200", undefined],
      ]);
    });
  });

  describe("instances", () => {
    it("maps DescribeInstances: state, public/private address, zone", async () => {
      ec2Mock.on(DescribeInstancesCommand).resolves({
        Reservations: [
          {
            Instances: [
              {
                InstanceId: "i-0feedface0000001",
                State: { Code: 16, Name: "running" },
                PublicIpAddress: "198.51.100.7",
                PrivateIpAddress: "10.0.1.23",
                Placement: { AvailabilityZone: "eu-central-1b" },
              },
            ],
          },
        ],
      });
      expect(await target.describeInstance("i-0feedface0000001")).toEqual({
        state: "running",
        publicAddress: "198.51.100.7",
        privateAddress: "10.0.1.23",
        zone: "eu-central-1b",
      });
      expect(inputs(DescribeInstancesCommand)).toEqual([{ InstanceIds: ["i-0feedface0000001"] }]);
    });

    it.each([
      ["pending", "pending"],
      ["running", "running"],
      ["stopping", "stopping"],
      ["stopped", "stopped"],
      ["shutting-down", "terminated"],
      ["terminated", "terminated"],
    ] as const)("EC2 %s → %s", async (ec2State, state) => {
      ec2Mock.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: [{ InstanceId: "i-1", State: { Name: ec2State } }] }] });
      expect(await target.describeInstance("i-1")).toEqual({ state });
    });

    it("an unknown instance is lost (InvalidInstanceID.NotFound or no reservation)", async () => {
      ec2Mock
        .on(DescribeInstancesCommand)
        .rejectsOnce(ec2Error("InvalidInstanceID.NotFound", "The instance ID 'i-0dead' does not exist"))
        .resolvesOnce({ Reservations: [] });
      expect(await target.describeInstance("i-0dead")).toEqual({ state: "lost" });
      expect(await target.describeInstance("i-0dead")).toEqual({ state: "lost" });
    });

    it("right after our own launch, not found is pending (EC2 eventual consistency), lost after the grace", async () => {
      ec2Mock.on(CreateSecurityGroupCommand).resolves({ GroupId: "sg-0123" });
      ec2Mock.on(AuthorizeSecurityGroupIngressCommand).resolves({ Return: true });
      ec2Mock.on(RunInstancesCommand).resolves({ Instances: [{ InstanceId: "i-0new" }] });
      ec2Mock.on(DescribeInstancesCommand).rejects(ec2Error("InvalidInstanceID.NotFound", "The instance ID 'i-0new' does not exist"));
      await target.launch({ idempotencyKey: RID, userId: "u", imageId: "ami-1", name: "n", allowedCidr: "192.0.2.1/32" });
      expect(await target.describeInstance("i-0new")).toEqual({ state: "pending" });
      clock = new Date(clock.getTime() + 5 * 60_000);
      expect(await target.describeInstance("i-0new")).toEqual({ state: "lost" });
    });

    it("a malformed id is a non-retryable error, not lost", async () => {
      ec2Mock.on(DescribeInstancesCommand).rejects(ec2Error("InvalidInstanceID.Malformed", 'Invalid id: "x"'));
      const err = await rejection(target.describeInstance("x"));
      expect(err).toMatchObject({ retryable: false, code: "InvalidInstanceID.Malformed" });
    });

    it("starts, stops and terminates", async () => {
      ec2Mock.on(StartInstancesCommand).resolves({});
      ec2Mock.on(StopInstancesCommand).resolves({});
      ec2Mock.on(TerminateInstancesCommand).resolves({});
      await target.startInstance("i-1");
      await target.stopInstance("i-1");
      await target.terminateInstance("i-1");
      expect(inputs(StartInstancesCommand)).toEqual([{ InstanceIds: ["i-1"] }]);
      expect(inputs(StopInstancesCommand)).toEqual([{ InstanceIds: ["i-1"] }]);
      expect(inputs(TerminateInstancesCommand)).toEqual([{ InstanceIds: ["i-1"] }]);
    });

    it("terminating an instance that is gone is a no-op; starting one is an error", async () => {
      const gone = ec2Error("InvalidInstanceID.NotFound", "The instance ID 'i-0dead' does not exist");
      ec2Mock.on(TerminateInstancesCommand).rejects(gone);
      ec2Mock.on(StartInstancesCommand).rejects(gone);
      await target.terminateInstance("i-0dead");
      expect(inputs(TerminateInstancesCommand)).toEqual([{ InstanceIds: ["i-0dead"] }]);
      const err = await rejection(target.startInstance("i-0dead"));
      expect(err).toMatchObject({ retryable: false, code: "InvalidInstanceID.NotFound" });
    });

    it("stopping in a wrong state is classified (IncorrectInstanceState → non-retryable)", async () => {
      ec2Mock.on(StopInstancesCommand).rejects(ec2Error("IncorrectInstanceState", "The instance 'i-1' is not in a state from which it can be stopped."));
      const err = await rejection(target.stopInstance("i-1"));
      expect(err).toMatchObject({ retryable: false, message: "IncorrectInstanceState: The instance 'i-1' is not in a state from which it can be stopped." });
    });
  });

  describe("deleteNetworkGuard", () => {
    it("deletes the group", async () => {
      ec2Mock.on(DeleteSecurityGroupCommand).resolves({ Return: true });
      await target.deleteNetworkGuard("sg-0123");
      expect(inputs(DeleteSecurityGroupCommand)).toEqual([{ GroupId: "sg-0123" }]);
    });

    it("a group that is gone is a no-op", async () => {
      ec2Mock.on(DeleteSecurityGroupCommand).rejects(ec2Error("InvalidGroup.NotFound", "The security group 'sg-0123' does not exist"));
      await target.deleteNetworkGuard("sg-0123");
      expect(inputs(DeleteSecurityGroupCommand)).toEqual([{ GroupId: "sg-0123" }]);
    });

    it("DependencyViolation (instance still shutting down) is retryable", async () => {
      ec2Mock.on(DeleteSecurityGroupCommand).rejects(ec2Error("DependencyViolation", "resource sg-0123 has a dependent object"));
      const err = await rejection(target.deleteNetworkGuard("sg-0123"));
      expect(err.retryable).toBe(true);
      expect(err.code).toBe("DependencyViolation");
      expect(err.message).toContain("DependencyViolation: resource sg-0123 has a dependent object");
    });
  });

  describe("console", () => {
    it("decodes the base64 console output", async () => {
      const text = "Booting Windows…\r\nEC2Launch: Windows is Ready to use\r\n";
      ec2Mock.on(GetConsoleOutputCommand).resolves({ InstanceId: "i-1", Output: Buffer.from(text, "utf8").toString("base64") });
      expect(await target.consoleOutput("i-1")).toBe(text);
      expect(inputs(GetConsoleOutputCommand)).toEqual([{ InstanceId: "i-1", Latest: true }]);
    });

    it("no output yet is an empty string", async () => {
      ec2Mock.on(GetConsoleOutputCommand).resolves({ InstanceId: "i-1" });
      expect(await target.consoleOutput("i-1")).toBe("");
    });

    it("returns the decoded screenshot bytes, typed as the JPEG they are", async () => {
      const jpeg = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0xff, 0xd9]);
      ec2Mock.on(GetConsoleScreenshotCommand).resolves({ InstanceId: "i-1", ImageData: jpeg.toString("base64") });
      const shot = await target.screenshot("i-1");
      expect(shot.contentType).toBe("image/jpeg");
      expect(Buffer.isBuffer(shot.bytes)).toBe(true);
      expect(shot.bytes.equals(jpeg)).toBe(true);
      expect(inputs(GetConsoleScreenshotCommand)).toEqual([{ InstanceId: "i-1", WakeUp: true }]);
    });

    it("labels the screenshot by its bytes: a PNG is image/png", async () => {
      const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d]);
      ec2Mock.on(GetConsoleScreenshotCommand).resolves({ InstanceId: "i-1", ImageData: png.toString("base64") });
      const shot = await target.screenshot("i-1");
      expect(shot.contentType).toBe("image/png");
      expect(shot.bytes.equals(png)).toBe(true);
    });

    it("screenshot errors are classified", async () => {
      ec2Mock.on(GetConsoleScreenshotCommand).rejects(ec2Error("UnsupportedOperation", "This instance type does not support console screenshots."));
      const err = await rejection(target.screenshot("i-1"));
      expect(err).toMatchObject({ retryable: false, code: "UnsupportedOperation" });
    });
  });
});

describe("classifyAwsError", () => {
  it.each([
    ["RequestLimitExceeded (server fault, 503)", ec2Error("RequestLimitExceeded", "Request limit exceeded.", 503)],
    ["RequestLimitExceeded (client fault)", ec2Error("RequestLimitExceeded", "Request limit exceeded.", 400, "client")],
    ["Throttling", ec2Error("Throttling", "Rate exceeded", 400)],
    ["ThrottlingException", ec2Error("ThrottlingException", "Rate exceeded", 400)],
    ["TooManyRequestsException", ec2Error("TooManyRequestsException", "slow down", 400)],
    ["HTTP 429", ec2Error("SomethingNew", "slow down", 429, "client")],
    ["InternalError 500", ec2Error("InternalError", "An internal error has occurred", 500)],
    ["Unavailable 503", ec2Error("Unavailable", "The server is overloaded", 503)],
    ["$retryable", Object.assign(ec2Error("Whatever", "try again", 400), { $retryable: { throttling: false } })],
    ["ECONNRESET", Object.assign(new Error("socket hang up"), { code: "ECONNRESET" })],
    ["ETIMEDOUT", Object.assign(new Error("connect ETIMEDOUT"), { code: "ETIMEDOUT" })],
    ["TimeoutError", Object.assign(new Error("Connection timed out after 1000 ms"), { name: "TimeoutError" })],
    ["unknown non-AWS error", new Error("boom")],
  ])("%s → retryable", (_label, err) => {
    expect(classifyAwsError(err).retryable).toBe(true);
  });

  it.each([
    ["InvalidParameterValue", "Value (x) for parameter groupId is invalid."],
    ["InvalidParameterCombination", "The parameter SubnetId cannot be used with the parameter SecurityGroup"],
    ["UnauthorizedOperation", "You are not authorized to perform this operation."],
    ["AuthFailure", "AWS was not able to validate the provided access credentials"],
    ["InvalidAMIID.NotFound", "The image id '[ami-1]' does not exist"],
    ["MissingParameter", "The request must contain the parameter ImageId"],
    ["InvalidClientTokenId", "The security token included in the request is invalid."],
    ["IdempotentParameterMismatch", "Arguments on this idempotent request are inconsistent with arguments used in previous request(s)."],
  ])("%s → non-retryable, message '<Code>: <message>'", (code, message) => {
    const err = classifyAwsError(ec2Error(code, message, code === "AuthFailure" ? 401 : 400));
    expect(err).toBeInstanceOf(TargetError);
    expect(err).toMatchObject({ retryable: false, code, message: `${code}: ${message}` });
  });

  it("passes a TargetError through and keeps the SDK error as cause", () => {
    const te = new TargetError("x", false, "X");
    expect(classifyAwsError(te)).toBe(te);
    const sdk = ec2Error("InvalidParameterValue", "bad");
    expect(classifyAwsError(sdk).cause).toBe(sdk);
  });
});

/**
 * The real SDK stack (no mock) against a local HTTP server answering EC2 XML errors: pins how
 * @aws-sdk/client-ec2 surfaces error codes, and the client createEc2Client builds.
 */
describe("against a fake EC2 endpoint", () => {
  let server: http.Server;
  let requests: string[];
  let reply: { status: number; code: string; message: string };

  beforeEach(async () => {
    requests = [];
    server = http.createServer((req, res) => {
      let body = "";
      req.on("data", (c: Buffer) => (body += c.toString()));
      req.on("end", () => {
        requests.push(new URLSearchParams(body).get("Action") ?? "");
        res.writeHead(reply.status, { "content-type": "text/xml;charset=UTF-8" });
        res.end(
          `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>${reply.code}</Code><Message>${reply.message}</Message></Error></Errors><RequestID>r-1</RequestID></Response>`,
        );
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    vi.stubEnv("AWS_ACCESS_KEY_ID", "AKIDTEST");
    vi.stubEnv("AWS_SECRET_ACCESS_KEY", "secret");
    vi.stubEnv("AWS_SESSION_TOKEN", "");
  });

  afterEach(async () => {
    vi.unstubAllEnvs();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  function client(): EC2Client {
    const { port } = server.address() as AddressInfo;
    return createEc2Client({ enabled: true, region: "eu-central-1", ec2Endpoint: `http://127.0.0.1:${port}`, importRoleName: "vmimport", instanceType: "t3.medium" });
  }

  it("EC2ServiceException carries name = Code and $fault; a client fault is not retried and classifies as non-retryable", async () => {
    reply = { status: 400, code: "InvalidParameterValue", message: "Value (vpc-nope) for parameter vpcId is invalid." };
    const ec2 = client();
    expect(await ec2.config.maxAttempts()).toBe(3);
    expect(await ec2.config.region()).toBe("eu-central-1");
    const raw = await ec2.send(new DescribeRegionsCommand({})).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(raw).toBeInstanceOf(EC2ServiceException);
    expect(raw).toMatchObject({ name: "InvalidParameterValue", $fault: "client", message: "Value (vpc-nope) for parameter vpcId is invalid.", $metadata: { httpStatusCode: 400 } });
    expect(requests).toEqual(["DescribeRegions"]);

    const target = new AwsTarget(ec2, { importRoleName: "vmimport", instanceType: "t3.medium" });
    const err = await rejection(target.deleteNetworkGuard("sg-1"));
    expect(err).toMatchObject({ retryable: false, code: "InvalidParameterValue", message: "InvalidParameterValue: Value (vpc-nope) for parameter vpcId is invalid." });
  });

  it("RequestLimitExceeded (HTTP 503) is retried by the SDK up to maxAttempts, then retryable for the workflow", async () => {
    reply = { status: 503, code: "RequestLimitExceeded", message: "Request limit exceeded." };
    const target = new AwsTarget(client(), { importRoleName: "vmimport", instanceType: "t3.medium" });
    const err = await rejection(target.describeInstance("i-1"));
    expect(err).toMatchObject({ retryable: true, code: "RequestLimitExceeded", message: "RequestLimitExceeded: Request limit exceeded." });
    expect(requests).toEqual(["DescribeInstances", "DescribeInstances", "DescribeInstances"]);
  });

  it("InvalidInstanceID.NotFound from the wire maps to lost", async () => {
    reply = { status: 400, code: "InvalidInstanceID.NotFound", message: "The instance ID 'i-1' does not exist" };
    const target = new AwsTarget(client(), { importRoleName: "vmimport", instanceType: "t3.medium" });
    expect(await target.describeInstance("i-1")).toEqual({ state: "lost" });
  });
});

/**
 * The access point on AWS (issue 15) against EC2 as a scripted model of its documented rules:
 * instances (ClientToken idempotency, IdempotentParameterMismatch, InvalidInstanceID.NotFound for a
 * while after launch, shutting-down → terminated, tags, console), security groups (InvalidGroup.Duplicate,
 * default allow-all egress, InvalidPermission.Duplicate, rule ids, DependencyViolation while an
 * instance that is not yet terminated uses the group or another group's rule references it).
 * The assertions are about what is left in the account, not only the calls.
 */
describe("AwsTarget access points (scripted EC2)", () => {
  type Rule = { id: string; egress: boolean; proto: string; from?: number; to?: number; cidr?: string; cidr6?: string; ref?: string };
  type Group = { id: string; name: string; vpcId?: string; tags: Tag[]; rules: Rule[] };
  type Vm = { id: string; token?: string; params: string; state: string; launchTime: Date; tags: Tag[]; groups: string[]; subnet?: string; privateIp: string; publicIp?: string; userData?: string; console: string };

  let ec2Mock: AwsClientStub<EC2Client>;
  let ec2: EC2Client;
  let clock: Date;
  let groups: Group[];
  let vms: Vm[];
  /** Instances are invisible to DescribeInstances/CreateTags for this long after launch. */
  let visibleAfterMs: number;
  /** Whether a launched gateway gets its public address at once. */
  let publicIpAtLaunch: boolean;
  let seq: number;

  const GATEWAY = { amiId: "ami-0gateway", instanceType: "t4g.nano", publicSubnetId: "subnet-0public", port: 51820 };
  const opts = { importRoleName: "vmimport", instanceType: "t3.medium", privateSubnetId: "subnet-0private", vpcId: "vpc-0def", gateway: GATEWAY };
  let target: AwsTarget;

  function inputs<I extends object>(command: abstract new (input: I) => unknown): I[] {
    return ec2Mock.commandCalls(command as never).map((c) => c.args[0].input as I);
  }

  const tagged = (tags: Tag[], filters: { Name?: string; Values?: string[] }[]) =>
    filters.filter((f) => f.Name?.startsWith("tag:")).every((f) => tags.some((t) => t.Key === f.Name!.slice(4) && f.Values!.includes(t.Value!)));
  const visible = (v: Vm) => clock.getTime() - v.launchTime.getTime() >= visibleAfterMs;
  const view = (v: Vm): Instance => ({
    InstanceId: v.id,
    State: { Name: v.state as never },
    LaunchTime: v.launchTime,
    ClientToken: v.token,
    Tags: v.tags.map((t) => ({ ...t })),
    PrivateIpAddress: v.privateIp,
    ...(v.publicIp ? { PublicIpAddress: v.publicIp } : {}),
    SecurityGroups: v.groups.map((g) => ({ GroupId: g, GroupName: groups.find((x) => x.id === g)?.name })),
  });
  const groupOf = (id: string | undefined) => {
    const g = groups.find((x) => x.id === id);
    if (!g) throw ec2Error("InvalidGroup.NotFound", `The security group '${id}' does not exist`);
    return g;
  };
  /** EC2 finishes terminating: shutting-down instances become terminated (their interfaces are released). */
  const settle = () => vms.filter((v) => v.state === "shutting-down").forEach((v) => (v.state = "terminated"));
  const liveVms = () => vms.filter((v) => v.state !== "terminated");

  function addRule(g: Group, egress: boolean, perms: IpPermission[]) {
    for (const p of perms) {
      const rule: Rule = {
        id: `sgr-${++seq}`,
        egress,
        proto: p.IpProtocol!,
        from: p.FromPort,
        to: p.ToPort,
        ...(p.IpRanges?.[0] ? { cidr: p.IpRanges[0].CidrIp } : {}),
        ...(p.UserIdGroupPairs?.[0] ? { ref: p.UserIdGroupPairs[0].GroupId } : {}),
      };
      const same = g.rules.find((r) => r.egress === egress && r.proto === rule.proto && r.from === rule.from && r.to === rule.to && r.cidr === rule.cidr && r.ref === rule.ref);
      if (same) throw ec2Error("InvalidPermission.Duplicate", `the specified rule "peer: ${rule.cidr ?? rule.ref}, TCP, from port: ${rule.from}" already exists`);
      g.rules.push(rule);
    }
    return { Return: true };
  }

  beforeEach(() => {
    ec2Mock = mockClient(EC2Client);
    ec2 = new EC2Client({ region: "eu-central-1", maxAttempts: 1, credentials: { accessKeyId: "test", secretAccessKey: "test" } });
    clock = new Date("2030-01-01T00:00:00Z");
    groups = [];
    vms = [];
    visibleAfterMs = 0;
    publicIpAtLaunch = true;
    seq = 0;
    target = new AwsTarget(ec2, { ...opts, now: () => clock });

    ec2Mock.on(CreateSecurityGroupCommand).callsFake((i: { GroupName: string; VpcId?: string; TagSpecifications?: { Tags?: Tag[] }[] }) => {
      if (groups.some((g) => g.name === i.GroupName && g.vpcId === i.VpcId)) throw ec2Error("InvalidGroup.Duplicate", `The security group '${i.GroupName}' already exists for VPC '${i.VpcId}'`);
      const g: Group = {
        id: `sg-0${++seq}`,
        name: i.GroupName,
        vpcId: i.VpcId,
        tags: i.TagSpecifications?.[0]?.Tags ?? [],
        rules: [
          { id: `sgr-${++seq}`, egress: true, proto: "-1", cidr: "0.0.0.0/0" },
          { id: `sgr-${++seq}`, egress: true, proto: "-1", cidr6: "::/0" },
        ],
      };
      groups.push(g);
      return { GroupId: g.id };
    });
    ec2Mock.on(DescribeSecurityGroupsCommand).callsFake((i: { GroupIds?: string[]; Filters?: { Name: string; Values: string[] }[] }) => {
      let found = groups.filter((g) => tagged(g.tags, i.Filters ?? []));
      for (const f of i.Filters ?? []) {
        if (f.Name === "group-name") found = found.filter((g) => f.Values.includes(g.name));
        else if (f.Name === "vpc-id") found = found.filter((g) => g.vpcId && f.Values.includes(g.vpcId));
        else if (!f.Name.startsWith("tag:")) throw ec2Error("InvalidParameterValue", `The filter '${f.Name}' is invalid`);
      }
      return { SecurityGroups: found.map((g) => ({ GroupId: g.id, GroupName: g.name, VpcId: g.vpcId, Tags: g.tags })) };
    });
    ec2Mock.on(DescribeSecurityGroupRulesCommand).callsFake((i: { Filters: { Name: string; Values: string[] }[] }) => {
      const g = groupOf(i.Filters.find((f) => f.Name === "group-id")!.Values[0]);
      return {
        SecurityGroupRules: g.rules.map((r) => ({
          SecurityGroupRuleId: r.id,
          GroupId: g.id,
          IsEgress: r.egress,
          IpProtocol: r.proto,
          FromPort: r.from ?? -1,
          ToPort: r.to ?? -1,
          ...(r.cidr ? { CidrIpv4: r.cidr } : {}),
          ...(r.cidr6 ? { CidrIpv6: r.cidr6 } : {}),
          ...(r.ref ? { ReferencedGroupInfo: { GroupId: r.ref } } : {}),
        })),
      };
    });
    ec2Mock.on(AuthorizeSecurityGroupIngressCommand).callsFake((i: { GroupId: string; IpPermissions: IpPermission[] }) => addRule(groupOf(i.GroupId), false, i.IpPermissions));
    ec2Mock.on(AuthorizeSecurityGroupEgressCommand).callsFake((i: { GroupId: string; IpPermissions: IpPermission[] }) => addRule(groupOf(i.GroupId), true, i.IpPermissions));
    const revoke = (egress: boolean) => (i: { GroupId: string; SecurityGroupRuleIds: string[] }) => {
      const g = groupOf(i.GroupId);
      const missing = i.SecurityGroupRuleIds.find((id) => !g.rules.some((r) => r.id === id && r.egress === egress));
      if (missing) throw ec2Error("InvalidSecurityGroupRuleId.NotFound", `The security group rule ID '${missing}' does not exist`);
      g.rules = g.rules.filter((r) => !i.SecurityGroupRuleIds.includes(r.id));
      return { Return: true };
    };
    ec2Mock.on(RevokeSecurityGroupEgressCommand).callsFake(revoke(true));
    ec2Mock.on(RevokeSecurityGroupIngressCommand).callsFake(revoke(false));
    ec2Mock.on(DeleteSecurityGroupCommand).callsFake((i: { GroupId: string }) => {
      const g = groupOf(i.GroupId);
      if (liveVms().some((v) => v.groups.includes(g.id)) || groups.some((o) => o !== g && o.rules.some((r) => r.ref === g.id)))
        throw ec2Error("DependencyViolation", `resource ${g.id} has a dependent object`);
      groups = groups.filter((x) => x !== g);
      return { Return: true };
    });

    ec2Mock.on(RunInstancesCommand).callsFake((i: RunInstancesCommandInput) => {
      const params = JSON.stringify({ ...i, ClientToken: undefined });
      const earlier = vms.find((v) => i.ClientToken && v.token === i.ClientToken);
      if (earlier) {
        if (earlier.params !== params) throw ec2Error("IdempotentParameterMismatch", "The client token you have provided is associated with a resource that is already deleted or has different parameters.");
        return { Instances: [view(earlier)] };
      }
      const nic = i.NetworkInterfaces?.[0];
      const n = ++seq;
      const v: Vm = {
        id: `i-0${String(n).padStart(16, "0")}`,
        token: i.ClientToken,
        params,
        state: "pending",
        launchTime: clock,
        tags: i.TagSpecifications?.[0]?.Tags ?? [],
        groups: nic?.Groups ?? i.SecurityGroupIds ?? [],
        subnet: nic?.SubnetId ?? i.SubnetId,
        privateIp: `10.0.${nic?.AssociatePublicIpAddress ? 0 : 1}.${n}`,
        ...(nic?.AssociatePublicIpAddress && publicIpAtLaunch ? { publicIp: `198.51.100.${n}` } : {}),
        userData: i.UserData,
        console: "",
      };
      vms.push(v);
      return { Instances: [{ ...view(v), PublicIpAddress: undefined }] };
    });
    ec2Mock.on(DescribeInstancesCommand).callsFake((i: { InstanceIds?: string[]; Filters?: { Name: string; Values: string[] }[] }) => {
      if (i.InstanceIds) {
        const found = i.InstanceIds.map((id) => vms.find((v) => v.id === id && visible(v)));
        const missing = i.InstanceIds.find((_, n) => !found[n]);
        if (missing) throw ec2Error("InvalidInstanceID.NotFound", `The instance ID '${missing}' does not exist`);
        return { Reservations: [{ Instances: found.map((v) => view(v!)) }] };
      }
      let found = vms.filter((v) => visible(v) && tagged(v.tags, i.Filters ?? []));
      for (const f of i.Filters ?? []) {
        if (f.Name === "instance-state-name") found = found.filter((v) => f.Values.includes(v.state));
        else if (f.Name === "client-token") found = found.filter((v) => v.token && f.Values.includes(v.token));
        else if (!f.Name.startsWith("tag:")) throw ec2Error("InvalidParameterValue", `The filter '${f.Name}' is invalid`);
      }
      return { Reservations: found.map((v) => ({ Instances: [view(v)] })) };
    });
    ec2Mock.on(TerminateInstancesCommand).callsFake((i: { InstanceIds: string[] }) => {
      const found = i.InstanceIds.map((id) => vms.find((v) => v.id === id && visible(v)));
      const missing = i.InstanceIds.find((_, n) => !found[n]);
      if (missing) throw ec2Error("InvalidInstanceID.NotFound", `The instance ID '${missing}' does not exist`);
      for (const v of found) if (v!.state !== "terminated") v!.state = "shutting-down";
      return { TerminatingInstances: found.map((v) => ({ InstanceId: v!.id })) };
    });
    ec2Mock.on(CreateTagsCommand).callsFake((i: { Resources: string[]; Tags: Tag[] }) => {
      for (const id of i.Resources) {
        const v = vms.find((x) => x.id === id && visible(x));
        if (!v) throw ec2Error("InvalidInstanceID.NotFound", `The instance ID '${id}' does not exist`);
        for (const t of i.Tags) v.tags = [...v.tags.filter((x) => x.Key !== t.Key), t];
        if (v.tags.length > 50) throw ec2Error("TagLimitExceeded", "The maximum number of tags per resource is 50");
      }
      return {};
    });
    ec2Mock.on(GetConsoleOutputCommand).callsFake((i: { InstanceId: string }) => {
      const v = vms.find((x) => x.id === i.InstanceId)!;
      return { InstanceId: v.id, ...(v.console ? { Output: Buffer.from(v.console).toString("base64") } : {}) };
    });
  });

  afterEach(() => {
    ec2Mock.restore();
  });

  /** A recovered machine as launch leaves it, running. */
  async function recovered(key = RID) {
    const launched = await target.launch({ idempotencyKey: key, userId: "user-42", imageId: "ami-0machine", name: "fileserver-recovered", allowedCidr: "203.0.113.0/24", ports: [22, 3389, 445] });
    vms.find((v) => v.id === launched.instanceId)!.state = "running";
    return launched;
  }

  const server = generateWgKeyPair();
  const alice = generateWgKeyPair();
  const bob = generateWgKeyPair();
  const spec = (instanceId: string, over: Partial<AccessPointSpec> = {}): AccessPointSpec => ({
    idempotencyKey: RID,
    instanceId,
    privateKey: server.privateKey,
    tunnelAddress: "100.96.3.1",
    tunnelSubnet: "100.96.3.0/24",
    ports: [22, 3389, 445],
    peers: [{ publicKey: alice.publicKey, address: "100.96.3.2" }],
    ...over,
  });
  const gateways = () => vms.filter((v) => v.tags.some((t) => t.Key === "reclo:role" && t.Value === "access-point"));
  const peerTagsOf = (v: Vm) => v.tags.filter((t) => t.Key!.startsWith("reclo-peers-"));

  it("offers private access only when a gateway is configured", () => {
    expect(target.access).toBeDefined();
    expect(new AwsTarget(ec2, { importRoleName: "vmimport", instanceType: "t3.medium" }).access).toBeUndefined();
  });

  it("opens a gateway in the public subnet, reachable on its UDP port only, forwarding only to the machine's private address on the declared ports; the machine admits only the gateway's group", async () => {
    const { instanceId, securityGroupId } = await recovered();
    const info = await target.access!.openAccessPoint(spec(instanceId));

    const [gw] = gateways();
    expect(gateways()).toHaveLength(1);
    expect(info).toEqual({ endpoint: `${gw!.publicIp}:51820`, publicKey: server.publicKey, resources: [`access point gateway ${gw!.id}`, `security group ${gw!.groups[0]}`] });
    const machine = vms.find((v) => v.id === instanceId)!;
    expect(machine.publicIp).toBeUndefined();
    expect(machine.subnet).toBe("subnet-0private");
    expect(gw!.subnet).toBe("subnet-0public");

    const run = inputs(RunInstancesCommand).find((r) => r.ClientToken === `${RID}-ap`)!;
    expect(run).toMatchObject({
      ImageId: "ami-0gateway",
      InstanceType: "t4g.nano",
      MinCount: 1,
      MaxCount: 1,
      NetworkInterfaces: [{ DeviceIndex: 0, SubnetId: "subnet-0public", Groups: [gw!.groups[0]], AssociatePublicIpAddress: true, DeleteOnTermination: true }],
      MetadataOptions: { HttpEndpoint: "enabled", HttpTokens: "required", HttpPutResponseHopLimit: 1, InstanceMetadataTags: "enabled" },
    });
    expect(run).not.toHaveProperty("KeyName"); // no SSH into the gateway
    expect(run).not.toHaveProperty("IamInstanceProfile"); // no credentials on it
    expect(gw!.tags).toEqual(
      expect.arrayContaining([
        { Key: "reclo:recovery", Value: RID },
        { Key: "reclo:role", Value: "access-point" },
        { Key: "reclo:access-point-for", Value: instanceId },
        { Key: "reclo:tunnel-subnet", Value: "100.96.3.0/24" },
        { Key: "reclo:wireguard-port", Value: "51820" },
      ]),
    );

    // The gateway's group: UDP 51820 in from anywhere; out only TCP to the machine's declared ports
    // (plus 80/443 for installing wireguard-tools at first boot); the default allow-all egress is gone.
    const gwGroup = groupOf(gw!.groups[0]);
    expect(gwGroup.name).toBe(`reclo-ap-${RID}`);
    expect(gwGroup.tags).toEqual(expect.arrayContaining([{ Key: "reclo:recovery", Value: RID }, { Key: "reclo:instance-sg", Value: securityGroupId }]));
    const shape = (r: Rule) => `${r.egress ? "out" : "in"} ${r.proto} ${r.from ?? ""} ${r.cidr ?? r.cidr6 ?? r.ref}`;
    expect(gwGroup.rules.map(shape).sort()).toEqual(
      [
        "in udp 51820 0.0.0.0/0",
        `out tcp 22 ${machine.privateIp}/32`,
        `out tcp 3389 ${machine.privateIp}/32`,
        `out tcp 445 ${machine.privateIp}/32`,
        "out tcp 80 0.0.0.0/0",
        "out tcp 443 0.0.0.0/0",
      ].sort(),
    );
    // The machine's group: in only from the gateway's group on the declared ports; no egress (no internet asked).
    expect(groupOf(securityGroupId).rules.map(shape).sort()).toEqual([`in tcp 22 ${gwGroup.id}`, `in tcp 3389 ${gwGroup.id}`, `in tcp 445 ${gwGroup.id}`]);

    // The first peer is in the gateway's tags.
    expect(await target.access!.accessPointStatus(instanceId)).toEqual({ running: false, peers: [{ publicKey: alice.publicKey, rxBytes: 0, txBytes: 0 }] });
  });

  it("the gateway's user data configures WireGuard with the key, DNAT from the tunnel address to the machine on each declared port only, and is valid bash", async () => {
    const { instanceId } = await recovered();
    await target.access!.openAccessPoint(spec(instanceId));
    const [gw] = gateways();
    const machine = vms.find((v) => v.id === instanceId)!;
    const script = Buffer.from(gw!.userData!, "base64").toString("utf8");
    expect(script).toContain(server.privateKey);
    expect(script).toContain("PORT=51820");
    expect(script).toContain(`TARGET=${machine.privateIp}`);
    expect(script).toContain('PORTS="22 3389 445"');
    expect(script).toContain("TUN=100.96.3.1");
    expect(script).toMatch(/\$t -P FORWARD DROP/);
    expect(script).toContain('iptables -t nat -A PREROUTING -i wg0 -d "$TUN" -p tcp --dport "$port" -j DNAT --to-destination "$TARGET"');
    expect(script).toContain('iptables -t nat -A POSTROUTING -o "$EXT" -s "$SUBNET" -d "$TARGET" -p tcp --dport "$port" -j MASQUERADE');
    expect(script).toContain("iptables -A INPUT -i wg0 -j DROP");
    expect(script).toContain("iptables -P OUTPUT DROP");
    // What the gateway itself may still send: metadata (its peer tags), DHCP renewals, time, WireGuard.
    expect(script.match(/^iptables -A OUTPUT .*-j ACCEPT$/gm)).toEqual([
      "iptables -A OUTPUT -o lo -j ACCEPT",
      "iptables -A OUTPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
      "iptables -A OUTPUT -d 169.254.169.254 -p tcp --dport 80 -j ACCEPT",
      'iptables -A OUTPUT -o "$EXT" -p udp --sport 68 --dport 67 -j ACCEPT',
      "iptables -A OUTPUT -d 169.254.169.123 -p udp --dport 123 -j ACCEPT",
      'iptables -A OUTPUT -o "$EXT" -p udp --sport "$PORT" -j ACCEPT',
      'iptables -A OUTPUT -o wg0 -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT',
    ]);
    // Forwarding: only established traffic and new TCP from the tunnel to the machine's declared port.
    expect(script.match(/^\s*iptables -A FORWARD .*$/gm)!.map((l) => l.trim())).toEqual([
      "iptables -A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
      'iptables -A FORWARD -i wg0 -o "$EXT" -s "$SUBNET" -d "$TARGET" -p tcp --dport "$port" -m conntrack --ctstate NEW -j ACCEPT',
    ]);
    // The only NAT rules are those two, inside the per-port loop.
    expect(script.match(/-t nat -A/g)).toHaveLength(2);
    expect(script).toContain("wg syncconf wg0");
    expect(script).toContain("meta-data/tags/instance/");
    // EC2 takes at most 16 KB of user data (before base64).
    expect(Buffer.byteLength(script)).toBeLessThan(16 * 1024);
    // The key file and the rendered peer config are written with umask 077.
    expect(script.match(/umask 077/g)!.length).toBeGreaterThanOrEqual(3);
    const file = path.join(os.tmpdir(), `reclo-gw-${process.pid}-${Date.now()}.sh`);
    fs.writeFileSync(file, script);
    try {
      expect(() => execFileSync("bash", ["-n", file])).not.toThrow();
      // The scripts the first boot writes are valid bash too.
      for (const [start, end] of [
        ["<<'RECLO_UP'\n", "RECLO_UP\n"],
        ["<<'RECLO_PEERS'\n", "RECLO_PEERS\n"],
        ["<<'RECLO_CONF'\n", "RECLO_CONF\n"],
      ] as const) {
        const body = script.slice(script.indexOf(start) + start.length, script.indexOf(`\n${end}`) + 1);
        fs.writeFileSync(file, body);
        expect(() => execFileSync("bash", ["-n", file])).not.toThrow();
      }
    } finally {
      fs.rmSync(file, { force: true });
    }
  });

  it("open is idempotent: a retry (this or another worker, another gateway type) finds the same gateway and groups; no second gateway", async () => {
    const { instanceId } = await recovered();
    const first = await target.access!.openAccessPoint(spec(instanceId));
    const again = await target.access!.openAccessPoint(spec(instanceId));
    expect(again).toEqual(first);
    // Another worker configured with another gateway type and port adopts the first gateway, and
    // reports the port that gateway listens on.
    const otherWorker = new AwsTarget(ec2, { ...opts, gateway: { ...GATEWAY, instanceType: "t3.nano", port: 443 }, now: () => clock });
    expect(await otherWorker.access!.openAccessPoint(spec(instanceId))).toEqual(first);
    expect(first.endpoint).toMatch(/:51820$/);
    expect(gateways()).toHaveLength(1);
    expect(groups.filter((g) => g.name === `reclo-ap-${RID}`)).toHaveLength(1);
    expect(inputs(RunInstancesCommand).filter((r) => r.ClientToken === `${RID}-ap`).map((r) => r.InstanceType)).toEqual(["t4g.nano", "t4g.nano", "t3.nano"]);
    expect(inputs(DescribeInstancesCommand)).toContainEqual({ Filters: [{ Name: "client-token", Values: [`${RID}-ap`] }] });
  });

  it("eventual consistency: a machine or gateway not visible yet, or a gateway without its public address yet, is ACCESS_POINT_PENDING (retryable); the retry completes without a second gateway", async () => {
    const { instanceId } = await recovered();
    visibleAfterMs = 10_000;
    expect(await rejection(target.access!.openAccessPoint(spec(instanceId)))).toMatchObject({ retryable: true, code: "ACCESS_POINT_PENDING" }); // the machine
    clock = new Date(clock.getTime() + 10_000);
    publicIpAtLaunch = false;
    expect(await rejection(target.access!.openAccessPoint(spec(instanceId)))).toMatchObject({ retryable: true, code: "ACCESS_POINT_PENDING" }); // the new gateway (CreateTags)
    clock = new Date(clock.getTime() + 10_000);
    const noAddress = await rejection(target.access!.openAccessPoint(spec(instanceId)));
    expect(noAddress).toMatchObject({ retryable: true, code: "ACCESS_POINT_PENDING" });
    expect(noAddress.message).toContain("no public address yet");
    gateways()[0]!.publicIp = "198.51.100.77";
    expect(await target.access!.openAccessPoint(spec(instanceId))).toMatchObject({ endpoint: "198.51.100.77:51820" });
    expect(gateways()).toHaveLength(1);
  });

  it("bad specs are non-retryable typed errors, before anything is created", async () => {
    const { instanceId } = await recovered();
    ec2Mock.resetHistory();
    const cases: [Partial<AccessPointSpec>, string][] = [
      [{ privateKey: "not-a-key" }, "INVALID_ACCESS_POINT"],
      [{ tunnelSubnet: "10.0.0.0/24", tunnelAddress: "10.0.0.1" }, "INVALID_ACCESS_POINT"],
      [{ tunnelAddress: "100.96.3.7" }, "INVALID_ACCESS_POINT"],
      [{ ports: [22, 22] }, "INVALID_PORTS"],
      [{ peers: [{ publicKey: alice.publicKey, address: "100.96.4.2" }] }, "INVALID_PEER"],
      [{ peers: [{ publicKey: alice.publicKey, address: "100.96.3.1" }] }, "INVALID_PEER"],
      [{ peers: [{ publicKey: "x", address: "100.96.3.2" }] }, "INVALID_PEER"],
    ];
    for (const [over, code] of cases) expect(await rejection(target.access!.openAccessPoint(spec(instanceId, over)))).toMatchObject({ retryable: false, code });
    expect(ec2Mock.calls()).toHaveLength(0);
  });

  it("a terminated machine gets no access point (INSTANCE_GONE)", async () => {
    const { instanceId } = await recovered();
    vms.find((v) => v.id === instanceId)!.state = "terminated";
    expect(await rejection(target.access!.openAccessPoint(spec(instanceId)))).toMatchObject({ retryable: false, code: "INSTANCE_GONE" });
    expect(gateways()).toHaveLength(0);
  });

  it("setAccessPeers replaces the whole list in one CreateTags (all slots, emptied ones included): a revoked key leaves the gateway's tags at once", async () => {
    const { instanceId } = await recovered();
    await target.access!.openAccessPoint(spec(instanceId));
    const [gw] = gateways();
    ec2Mock.resetHistory();
    await target.access!.setAccessPeers(instanceId, [
      { publicKey: alice.publicKey, address: "100.96.3.2" },
      { publicKey: bob.publicKey, address: "100.96.3.3" },
    ]);
    expect((await target.access!.accessPointStatus(instanceId)).peers.map((p) => p.publicKey)).toEqual([alice.publicKey, bob.publicKey]);
    await target.access!.setAccessPeers(instanceId, [{ publicKey: bob.publicKey, address: "100.96.3.3" }]);
    expect(peerTagsOf(gw!).map((t) => t.Value).filter(Boolean)).toEqual([`3=${bob.publicKey}`]);
    expect(JSON.stringify(gw!.tags)).not.toContain(alice.publicKey);
    await target.access!.setAccessPeers(instanceId, []);
    expect(peerTagsOf(gw!).every((t) => t.Value === "")).toBe(true);
    expect(peerTagsOf(gw!)).toHaveLength(8);
    const writes = inputs(CreateTagsCommand);
    expect(writes).toHaveLength(3);
    expect(writes.every((w) => w.Resources!.length === 1 && w.Resources![0] === gw!.id && w.Tags!.length === 8)).toBe(true);
    // Idempotent: the same list again writes the same tags.
    await target.access!.setAccessPeers(instanceId, []);
    expect(inputs(CreateTagsCommand)[3]).toEqual(writes[2]);
  });

  it("the peer limit (40: EC2's 50 tags per resource) is a typed error; 40 peers fit", async () => {
    const { instanceId } = await recovered();
    await target.access!.openAccessPoint(spec(instanceId));
    const many = Array.from({ length: 41 }, (_, n) => ({ publicKey: generateWgKeyPair().publicKey, address: `100.96.3.${n + 2}` }));
    expect(await rejection(target.access!.setAccessPeers(instanceId, many))).toMatchObject({ retryable: false, code: "TOO_MANY_PEERS" });
    await target.access!.setAccessPeers(instanceId, many.slice(0, 40));
    const status = await target.access!.accessPointStatus(instanceId);
    expect(status.peers.map((p) => p.publicKey)).toEqual(many.slice(0, 40).map((p) => p.publicKey));
    expect(gateways()[0]!.tags.length).toBeLessThanOrEqual(50);
    // Every tag value fits EC2's 256 characters.
    expect(gateways()[0]!.tags.every((t) => t.Value!.length <= 256)).toBe(true);
  });

  it("peers of a machine without an access point: NO_ACCESS_POINT; its status: not running", async () => {
    const { instanceId } = await recovered();
    expect(await rejection(target.access!.setAccessPeers(instanceId, []))).toMatchObject({ retryable: false, code: "NO_ACCESS_POINT" });
    expect(await target.access!.accessPointStatus(instanceId)).toEqual({ running: false, peers: [] });
  });

  it("status: running only once EC2 runs the gateway and its console shows the ready line", async () => {
    const { instanceId } = await recovered();
    await target.access!.openAccessPoint(spec(instanceId));
    const [gw] = gateways();
    expect((await target.access!.accessPointStatus(instanceId)).running).toBe(false); // pending
    gw!.state = "running";
    expect((await target.access!.accessPointStatus(instanceId)).running).toBe(false); // booting
    gw!.console = `[  OK  ] Started cloud-final.service\n${GATEWAY_READY_MARKER} ${server.publicKey}\n`;
    expect((await target.access!.accessPointStatus(instanceId)).running).toBe(true);
    expect(inputs(GetConsoleOutputCommand).at(-1)).toEqual({ InstanceId: gw!.id, Latest: true });
  });

  it("closeAccessPoint terminates the gateway, revokes the machine's rules for it and deletes its group (DependencyViolation while the gateway shuts down: retryable); a second close is a no-op", async () => {
    const { instanceId, securityGroupId } = await recovered();
    await target.access!.openAccessPoint(spec(instanceId));
    const [gw] = gateways();
    const gwGroup = gw!.groups[0]!;
    const err = await rejection(target.access!.closeAccessPoint(instanceId));
    expect(err).toMatchObject({ retryable: true, code: "DependencyViolation" });
    expect(err.message).toMatch(new RegExp(`^terminated access point gateway ${gw!.id}; then: security group ${gwGroup} is still in use`));
    expect(gw!.state).toBe("shutting-down");
    expect(groupOf(securityGroupId).rules).toEqual([]); // the machine admits nothing any more
    settle();
    expect(await target.access!.closeAccessPoint(instanceId)).toEqual([`deleted security group ${gwGroup}`]);
    expect(groups.map((g) => g.id)).toEqual([securityGroupId]);
    expect(await target.access!.closeAccessPoint(instanceId)).toEqual([]);
    expect(inputs(TerminateInstancesCommand)).toEqual([{ InstanceIds: [gw!.id] }]);
    // The machine itself runs on.
    expect(vms.find((v) => v.id === instanceId)!.state).toBe("running");
    // A closed access point is not reopened under the same key (its ClientToken's gateway is gone).
    expect(await rejection(target.access!.openAccessPoint(spec(instanceId)))).toMatchObject({ retryable: false, code: "ACCESS_POINT_CLOSED" });
  });

  it("terminateInstance also terminates the gateway; deleteNetworkGuard then deletes the machine's group and the gateway's (retried past DependencyViolation): nothing is left", async () => {
    const { instanceId, securityGroupId } = await recovered();
    await target.access!.openAccessPoint(spec(instanceId));
    await target.terminateInstance(instanceId);
    expect(liveVms().map((v) => v.state)).toEqual(["shutting-down", "shutting-down"]);
    expect(await rejection(target.deleteNetworkGuard(securityGroupId!))).toMatchObject({ retryable: true, code: "DependencyViolation" });
    settle();
    await target.deleteNetworkGuard(securityGroupId!);
    expect(groups).toEqual([]);
    expect(liveVms()).toEqual([]);
    // Idempotent: everything already gone.
    await target.terminateInstance(instanceId);
    await target.deleteNetworkGuard(securityGroupId!);
  });

  it("deleteNetworkGuard retried after the machine's group went but the gateway's was still in use finds the gateway's group by its tag", async () => {
    const { instanceId, securityGroupId } = await recovered();
    await target.access!.openAccessPoint(spec(instanceId));
    // The machine is gone, the gateway is still shutting down.
    await target.terminateInstance(instanceId);
    vms.find((v) => v.id === instanceId)!.state = "terminated";
    expect(await rejection(target.deleteNetworkGuard(securityGroupId!))).toMatchObject({ retryable: true, code: "DependencyViolation" });
    expect(groups.map((g) => g.name)).toEqual([`reclo-ap-${RID}`]);
    settle();
    await target.deleteNetworkGuard(securityGroupId!);
    expect(groups).toEqual([]);
  });

  it("discardLaunch (cancel, failure or the time limit cut the launch short, nothing recorded) removes the machine, its gateway and both groups, by the recovery tag only", async () => {
    const other = "0b2d9f4e-1111-4c55-9a1e-3b2f6c8d9e02";
    const kept = await recovered(other);
    const { instanceId, securityGroupId } = await recovered();
    await target.access!.openAccessPoint(spec(instanceId));
    const [gw] = gateways();
    const err = await rejection(target.discardLaunch(RID));
    expect(err).toMatchObject({ retryable: true, code: "DependencyViolation" });
    settle();
    const removed = await target.discardLaunch(RID);
    expect(removed).toEqual([`deleted security group ${securityGroupId}`, `deleted security group ${gw!.groups[0]}`]); // the machine's first: it references the gateway's
    expect(vms.filter((v) => v.state !== "terminated").map((v) => v.id)).toEqual([kept.instanceId]);
    expect(groups.map((g) => g.id)).toEqual([kept.securityGroupId]);
    expect(await target.discardLaunch(RID)).toEqual([]);
    // The first call said what it terminated.
    const first = inputs(TerminateInstancesCommand)[0]!;
    expect(new Set(first.InstanceIds)).toEqual(new Set([instanceId, gw!.id]));
  });

  it("discardLaunch's retryable error names what it already terminated (the retry will not see those instances again)", async () => {
    const { instanceId } = await recovered();
    await target.access!.openAccessPoint(spec(instanceId));
    const [gw] = gateways();
    const err = await rejection(target.discardLaunch(RID));
    expect(err.retryable).toBe(true);
    expect(err.message).toContain(`terminated instance ${instanceId}`);
    expect(err.message).toContain(`terminated access point gateway ${gw!.id}`);
    expect(err.message).toContain("DependencyViolation");
    settle();
    expect(await target.discardLaunch(RID)).toHaveLength(2);
    expect(groups).toEqual([]);
  });
});

/**
 * The gateway's peer reader (bash, as the gateway runs it) against a local instance metadata
 * service speaking IMDSv2 (token PUT, then the token on every read): what `wg syncconf` would get.
 */
describe("the gateway's peer reader against a local IMDSv2", () => {
  let server: http.Server;
  let tags: Map<string, string>;
  let failing: Set<string>;
  let dir: string;
  let imds: string;
  const TOKEN = "imds-token-1";

  beforeEach(async () => {
    tags = new Map([
      ["Name", "reclo-access-point-i-1"],
      ["reclo:recovery", RID],
    ]);
    failing = new Set();
    server = http.createServer((req, res) => {
      const url = req.url ?? "";
      if (req.method === "PUT" && url === "/latest/api/token") {
        if (!req.headers["x-aws-ec2-metadata-token-ttl-seconds"]) return res.writeHead(400).end();
        return res.writeHead(200).end(TOKEN);
      }
      if (req.headers["x-aws-ec2-metadata-token"] !== TOKEN) return res.writeHead(401).end();
      const prefix = "/latest/meta-data/tags/instance/";
      if (req.method !== "GET" || !url.startsWith(prefix)) return res.writeHead(404).end();
      const key = decodeURIComponent(url.slice(prefix.length));
      if (!key) return res.writeHead(200).end([...tags.keys()].join("\n"));
      if (failing.has(key)) return res.writeHead(500).end();
      if (!tags.has(key)) return res.writeHead(404).end();
      return res.writeHead(200).end(tags.get(key));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    imds = `http://127.0.0.1:${(server.address() as AddressInfo).port}/latest`;
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "reclo-imds-"));
    fs.writeFileSync(path.join(dir, "wg.key"), "c2VydmVyLXByaXZhdGUta2V5LTMyLWJ5dGVzLWxvbmc=\n");
    fs.writeFileSync(path.join(dir, "conf.sh"), gatewayPeersConfScript({ prefix: "100.96.3", port: 51820 }));
  });

  afterEach(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function render(): Promise<{ code: number; out: string }> {
    return promisify(execFile)("bash", [path.join(dir, "conf.sh")], { env: { ...process.env, RECLO_IMDS: imds, RECLO_KEY_FILE: path.join(dir, "wg.key") } }).then(
      ({ stdout }) => ({ code: 0, out: stdout }),
      (err: { code: number; stdout: string }) => ({ code: err.code, out: err.stdout }),
    );
  }

  function keyOf(n: number): string {
    return Buffer.alloc(32, n).toString("base64");
  }

  it("turns the tags setAccessPeers writes into one [Peer] per key, each allowed exactly its own /32", async () => {
    const peers = Array.from({ length: 12 }, (_, n) => ({ publicKey: keyOf(n + 1), address: `100.96.3.${n + 2}` }));
    for (const t of peerTags("100.96.3.0/24", peers)) tags.set(t.Key!, t.Value!);
    const { code, out } = await render();
    expect(code).toBe(0);
    const expected =
      "[Interface]\nListenPort = 51820\nPrivateKey = c2VydmVyLXByaXZhdGUta2V5LTMyLWJ5dGVzLWxvbmc=\n" +
      peers.map((p) => `[Peer]\nPublicKey = ${p.publicKey}\nAllowedIPs = ${p.address}/32\n`).join("");
    expect(out).toBe(expected);
  });

  it("no peers (all slots empty): the interface alone, so syncconf removes every peer", async () => {
    for (const t of peerTags("100.96.3.0/24", [])) tags.set(t.Key!, t.Value!);
    const { code, out } = await render();
    expect(code).toBe(0);
    expect(out).not.toContain("[Peer]");
    expect(out).toContain("[Interface]");
  });

  it("skips entries that are not a peer address of this subnet or not a key (a tag edited by hand), and never globs", async () => {
    tags.set("reclo-peers-0", `1=${keyOf(1)} 255=${keyOf(2)} 08=${keyOf(3)} 2=short= 3=${keyOf(4)} * x=${keyOf(5)}`);
    tags.set("reclo-peers-x", `4=${keyOf(6)}`);
    tags.set("reclo-peers-10", `5=${keyOf(7)}`);
    const { code, out } = await render();
    expect(code).toBe(0);
    expect(out.match(/\[Peer\]/g)).toHaveLength(1);
    expect(out).toContain(`PublicKey = ${keyOf(4)}\nAllowedIPs = 100.96.3.3/32\n`);
  });

  it("a failed read (a slot, or the token) exits non-zero: the current peers stay instead of a partial list", async () => {
    for (const t of peerTags("100.96.3.0/24", [{ publicKey: keyOf(1), address: "100.96.3.2" }])) tags.set(t.Key!, t.Value!);
    failing.add("reclo-peers-3");
    expect((await render()).code).not.toBe(0);
    failing.clear();
    expect((await render()).code).toBe(0);
    imds = imds.replace(/\/latest$/, "/nothing");
    expect((await render()).code).not.toBe(0);
  });
});
