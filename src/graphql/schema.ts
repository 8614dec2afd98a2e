import "reflect-metadata";
import { printSchema, lexicographicSortSchema, type GraphQLSchema } from "graphql";
import { buildSchema } from "type-graphql";
import { AuthResolver, UserFieldsResolver } from "../auth/auth.resolver";
import { BackupResolver } from "../backups/backup.resolver";
import { TrashResolver } from "../backups/trash.resolver";
import { UploadResolver } from "../uploads/upload.resolver";
import { RecoveryResolver } from "../recoveries/recovery.resolver";
import { InstanceResolver } from "../instances/instance.resolver";
import { VerificationResolver } from "../verification/verification.resolver";
import { QuotaResolver } from "../quotas/quota.resolver";
import { DrillResolver } from "../drills/drill.resolver";
import { AccessKeyResolver, InstanceAccessResolver } from "../access/access-key.resolver";
import { SourceResolver } from "../sources/source.resolver";
import { NotificationResolver, WebhookResolver } from "../alerts/notification.resolver";
import { RecoveryDiagnosticsResolver, SupportResolver } from "../support/acting.resolver";
import { SupportGrantResolver } from "../support/support.resolver";
import { AgentKeyResolver } from "../agent-keys/agent-key.resolver";
import { authChecker } from "./auth-checker";
import { graphqlPubSub, noEvents } from "./subscriptions";
import type { EventBus } from "../events/event-bus";

export const resolvers = [AuthResolver, UserFieldsResolver, BackupResolver, UploadResolver, RecoveryResolver, InstanceResolver, VerificationResolver, QuotaResolver, DrillResolver, AccessKeyResolver, InstanceAccessResolver, SourceResolver, NotificationResolver, WebhookResolver, SupportGrantResolver, SupportResolver, RecoveryDiagnosticsResolver, AgentKeyResolver, TrashResolver] as const;

/** Builds the executable schema; subscriptions listen to `events`. Without it (schema printing) they are still typed. */
export async function buildAppSchema(events?: EventBus): Promise<GraphQLSchema> {
  return buildSchema({
    resolvers: [...resolvers],
    authChecker,
    authMode: "error",
    pubSub: events ? graphqlPubSub(events) : noEvents,
    validate: false,
    emitSchemaFile: false,
  });
}

/** The SDL committed as schema.graphql (sorted, so diffs are stable). */
export async function printAppSchema(): Promise<string> {
  const header = "# Generated from the type-graphql resolvers by `npm run schema:emit`. Do not edit.\n\n";
  return header + printSchema(lexicographicSortSchema(await buildAppSchema())) + "\n";
}
