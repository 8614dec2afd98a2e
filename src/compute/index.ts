import type { S3Client } from "@aws-sdk/client-s3";
import type { Config } from "../config";
import type { Logger } from "../logger";
import { AwsTarget, createEc2Client } from "./aws.target";
import { LocalTarget } from "./local.target";
import type { ComputeTarget, TargetKind } from "./target";

/** The compute targets this process can drive: the local QEMU host always, AWS when configured. */
export function createTargets(config: Config, s3: S3Client, logger: Logger): Partial<Record<TargetKind, ComputeTarget>> {
  const targets: Partial<Record<TargetKind, ComputeTarget>> = {
    LOCAL: new LocalTarget({ local: config.local, s3, logger }),
  };
  if (config.aws.enabled) {
    targets.AWS = new AwsTarget(createEc2Client(config.aws), {
      importRoleName: config.aws.importRoleName,
      instanceType: config.aws.instanceType,
      subnetId: config.aws.subnetId,
      vpcId: config.aws.vpcId,
    });
  }
  return targets;
}
