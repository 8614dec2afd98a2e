import { Arg, Args, Authorized, Ctx, FieldResolver, Mutation, Query, Resolver, Root } from "type-graphql";
import type { Context } from "../graphql/context";
import { currentUser } from "../graphql/context";
import { PageArgsInput } from "../graphql/connection";
import type { SourceRow } from "../db/schema";
import type { Page } from "../shared/pagination";
import { Backup } from "../backups/backup.type";
import { WEEKDAYS, type BackupDecision } from "./source.service";
import { BackupPlan, Source, SourceConnection, type Weekday } from "./source.type";
import { AgentCheckInInput, SetBackupScheduleInput } from "./source.input";

/** A source as the API shows it; the row rides along for the field resolvers. */
type SourceView = Source & { row: SourceRow };

function toGraphQL(row: SourceRow): SourceView {
  return {
    id: row.id,
    name: row.name,
    schedule: { fullEvery: WEEKDAYS[row.fullEvery] as Weekday, incrementalAt: row.incrementalAt, timezone: row.timezone, graceMinutes: row.graceMinutes, since: row.scheduleSetAt },
    lastSeenAt: row.lastSeenAt,
    agentHost: row.agentHost,
    agentVersion: row.agentVersion,
    createdAt: row.createdAt,
    row,
  };
}

const toPlan = (d: BackupDecision): BackupPlan => d as unknown as BackupPlan;

@Resolver(() => Source)
export class SourceResolver {
  @Authorized()
  @Query(() => SourceConnection, { description: "Your sources (protected machines) with their schedules, newest first" })
  async sources(@Args(() => PageArgsInput) args: PageArgsInput, @Ctx() ctx: Context) {
    const page: Page<SourceRow> = await ctx.services.sources.list(currentUser(ctx).id, args);
    return { ...page, edges: page.edges.map((e) => ({ cursor: e.cursor, node: toGraphQL(e.node) })) };
  }

  @Authorized()
  @Query(() => Source, { nullable: true, description: "One of your sources by name (null when unknown)" })
  async source(@Arg("name") name: string, @Ctx() ctx: Context) {
    const row = await ctx.services.sources.get(currentUser(ctx).id, name);
    return row ? toGraphQL(row) : null;
  }

  @Authorized()
  @Query(() => BackupPlan, {
    description:
      "What a backup of the source taken at `at` (default now) is: FULL or INCREMENTAL and its parent. The one rule the agent and `reclo backup` follow: FULL when there is nothing intact to build on or no COMPLETED FULL was started since the latest weekly FULL slot, else INCREMENTAL.",
  })
  async backupPlan(@Arg("sourceName") sourceName: string, @Arg("at", () => Date, { nullable: true }) at: Date | null, @Ctx() ctx: Context) {
    return toPlan(await ctx.services.sources.plan(currentUser(ctx).id, sourceName, at));
  }

  @Authorized()
  @Mutation(() => Source, { description: "Set a source's backup schedule (the source is created when new). Its agent follows the change without a restart." })
  async setBackupSchedule(@Arg("input", () => SetBackupScheduleInput) input: SetBackupScheduleInput, @Ctx() ctx: Context) {
    return toGraphQL(await ctx.services.sources.setSchedule(currentUser(ctx).id, input));
  }

  @Authorized()
  @Mutation(() => Source, { description: "An agent checks in: records it as seen now and answers its source with the schedule and next backup (the source is created with the default schedule when new)" })
  async agentCheckIn(@Arg("input", () => AgentCheckInInput) input: AgentCheckInInput, @Ctx() ctx: Context) {
    return toGraphQL(await ctx.services.sources.checkIn(currentUser(ctx).id, input));
  }

  @FieldResolver(() => Backup, { nullable: true, description: "The latest backup of the source that is not deleted (any status)" })
  lastBackup(@Root() source: SourceView, @Ctx() ctx: Context) {
    return ctx.services.sources.lastBackup(currentUser(ctx).id, source.name);
  }

  @FieldResolver(() => BackupPlan, { description: "The next slot and what it will take, as things stand now" })
  async nextBackup(@Root() source: SourceView, @Ctx() ctx: Context) {
    return toPlan(await ctx.services.sources.nextBackup(source.row));
  }

  @FieldResolver(() => Date, { nullable: true, description: "In the trash (deleteSource): when it will be deleted with its restore points and agent keys; null when not in the trash" })
  deleteAfter(@Root() source: SourceView, @Ctx() ctx: Context) {
    return ctx.services.sources.deleteAfter(source.row);
  }

  @FieldResolver(() => Date, { nullable: true, description: "The first slot nobody backed up whose grace has passed (null: none missed, or the source is in the trash)" })
  missedSince(@Root() source: SourceView, @Ctx() ctx: Context) {
    return ctx.services.sources.missedSince(source.row);
  }
}
