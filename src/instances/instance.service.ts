import { and, eq } from "drizzle-orm";
import type { Db } from "../db/client";
import { instances, type InstanceRow } from "../db/schema";
import { newId } from "../common/ids";
import { findOwned } from "../common/ownership";
import { paginateOwned, type Page, type PageArgs, type PageLimits } from "../common/pagination";

export type NewInstance = Pick<InstanceRow, "recoveryId" | "provider" | "providerId" | "name" | "state"> &
  Partial<Pick<InstanceRow, "address" | "privateAddress" | "zone">>;

export class InstanceService {
  constructor(
    private readonly db: Db,
    private readonly limits: PageLimits,
    private readonly now: () => Date = () => new Date(),
  ) {}

  get(userId: string, id: string): Promise<InstanceRow> {
    return findOwned<InstanceRow>(this.db, instances, "Instance", userId, id);
  }

  list(userId: string, args: PageArgs): Promise<Page<InstanceRow>> {
    return paginateOwned<InstanceRow>(this.db, instances, userId, args, this.limits);
  }

  async forRecovery(userId: string, recoveryId: string): Promise<InstanceRow | null> {
    const [row] = await this.db
      .select()
      .from(instances)
      .where(and(eq(instances.recoveryId, recoveryId), eq(instances.userId, userId)))
      .limit(1);
    return row ?? null;
  }

  /** Records a machine a recovery launched. */
  async record(userId: string, input: NewInstance): Promise<InstanceRow> {
    const now = this.now();
    const row: InstanceRow = {
      id: newId(),
      userId,
      address: null,
      privateAddress: null,
      zone: null,
      lastStoppedAt: null,
      terminatedAt: null,
      createdAt: now,
      updatedAt: now,
      ...input,
    };
    await this.db.insert(instances).values(row);
    return row;
  }
}
