import type { Config } from "../config";
import type { Logger } from "../logger";
import { AwsTarget, createEc2Client } from "./aws.target";
import { LocalTarget } from "./local.target";
import type { ComputeTarget, ImageSource, TargetKind } from "./target";

/** The compute targets this process can drive: the local QEMU host always, AWS when configured. */
export function createTargets(config: Config, imageSource: ImageSource, logger: Logger): Partial<Record<TargetKind, ComputeTarget>> {
  const targets: Partial<Record<TargetKind, ComputeTarget>> = {
    LOCAL: new LocalTarget({ local: config.local, imageSource, logger }),
  };
  if (config.aws.enabled) {
    targets.AWS = new AwsTarget(createEc2Client(config.aws), {
      importRoleName: config.aws.importRoleName,
      instanceType: config.aws.instanceType,
      privateSubnetId: config.aws.privateSubnetId,
      vpcId: config.aws.vpcId,
      ...(config.aws.gateway ? { gateway: config.aws.gateway } : {}),
    });
  }
  return targets;
}
