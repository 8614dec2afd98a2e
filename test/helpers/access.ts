import { eq } from "drizzle-orm";
import { backups, type InstanceRow } from "../../src/db/schema";
import type { FakeTarget } from "./fake-target";
import type { TestStack, TestUser } from "./stack";

let n = 0;

/**
 * A recovered machine as a completed recovery leaves it, without running one: a COMPLETED backup, a
 * recovery of it, the machine at `target` (a FakeTarget set as the stack's AWS target) with its
 * access point opened through the product's AccessService, and its instance row.
 */
export async function recoveredMachine(stack: TestStack, target: FakeTarget, owner: TestUser, opts: { open?: boolean; state?: InstanceRow["state"] } = {}) {
  const s = stack.rt.services;
  const backup = await s.backups.create(owner.id, { sourceName: `web${process.pid}x${++n}`, imageSize: 64 * 1024 * 1024, kind: "FULL" as never });
  await stack.rt.database.db.update(backups).set({ status: "COMPLETED", completedAt: new Date() }).where(eq(backups.id, backup.id));
  const recovery = await s.recoveries.create(owner.id, { backupId: backup.id, target: "AWS" });
  const providerId = `i-${recovery.id.slice(-12)}`;
  target.instances.add(providerId);
  const opened = opts.open === false ? null : await s.access.open({ recoveryId: recovery.id, userId: owner.id, provider: "AWS", providerInstanceId: providerId, ports: [22, 3389, 445] });
  const instance = await s.instances.record(owner.id, { recoveryId: recovery.id, provider: "AWS", providerId, name: `web${n}-recovered`, state: opts.state ?? "RUNNING" });
  return { recovery, instance, providerId, opened };
}

/** The private key in a wg-quick configuration. */
export const privateKeyIn = (conf: string) => /^PrivateKey = (\S+)$/m.exec(conf)![1]!;
