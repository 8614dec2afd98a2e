import { getArgumentValues, getOperationAST, getVariableValues, type DocumentNode, type GraphQLSchema } from "graphql";
import type { Context } from "./context";
import { AppError, ErrorCode } from "../shared/errors";
import { SENSITIVE_FIELDS, describeOperation, fragmentsOf, topFieldNodes } from "./support-acting";

/**
 * What an agent key may do (issue 18), in one place: the only top-level fields an operation made
 * with an agent key may select, and for each how it names the source it touches. Everything else
 * (deleting, retention, recovery, verification, listing other sources, keys, sessions,
 * subscriptions, introspection) is FORBIDDEN before anything runs, and so is an allowed field that
 * names another source or a backup of another source.
 *
 * `abortBackup` is allowed: it only abandons an UPLOADING backup (CONFLICT for anything else), never
 * a restore point, and the agent needs it to give up an upload whose image changed underneath it.
 */
type SourceOf = { sourceName: (args: Record<string, unknown>) => unknown } | { backupId: (args: Record<string, unknown>) => unknown };
const input = (args: Record<string, unknown>) => (args.input ?? {}) as Record<string, unknown>;

export const AGENT_ALLOWED: Readonly<Record<"query" | "mutation" | "subscription", Readonly<Record<string, SourceOf>>>> = {
  query: {
    /** Its source: schedule, next backup. */
    source: { sourceName: (a) => a.name },
    /** What to take now (the agent's one rule). */
    backupPlan: { sourceName: (a) => a.sourceName },
    /** A backup of its source (resuming an upload, checking a completion). */
    backup: { backupId: (a) => a.id },
    /** Its source's backups only (`filter.sourceName` required): the parent of an incremental. */
    backups: { sourceName: (a) => (a.filter as Record<string, unknown> | null | undefined)?.sourceName },
  },
  mutation: {
    agentCheckIn: { sourceName: (a) => input(a).sourceName },
    createBackup: { sourceName: (a) => input(a).sourceName },
    requestChunkUploads: { backupId: (a) => input(a).backupId },
    confirmChunks: { backupId: (a) => input(a).backupId },
    completeBackup: { backupId: (a) => input(a).backupId },
    /** By backupId only: an uploadId (which could name another source's upload) is refused. */
    failUpload: { backupId: (a) => (input(a).uploadId == null ? input(a).backupId : undefined) },
    abortBackup: { backupId: (a) => a.id },
  },
  subscription: {},
};

/** The one sensitive field an agent reads: where to upload its chunks. */
const AGENT_SENSITIVE_ALLOWED: ReadonlySet<string> = new Set(["ChunkUploadTicket.url"]);

const agentForbidden = (message: string, field?: string) => new AppError(ErrorCode.FORBIDDEN, message, { reason: "AGENT_KEY_SCOPE", ...(field ? { field } : {}) });

/**
 * Refuses (FORBIDDEN) an operation made with an agent key unless every top-level field is in
 * AGENT_ALLOWED and names the key's own source (directly, or through one of its backups).
 * A no-op for sessions. Runs on a validated document, before execution (HTTP and WebSocket).
 */
export async function checkAgentOperation(ctx: Context, schema: GraphQLSchema, document: DocumentNode, operationName: string | null | undefined, variables: Record<string, unknown> | null | undefined): Promise<void> {
  const agent = ctx.agent;
  if (!agent) return;
  const op = getOperationAST(document, operationName);
  if (!op) throw agentForbidden("An agent key may not run this operation");
  const root = op.operation === "query" ? schema.getQueryType() : op.operation === "mutation" ? schema.getMutationType() : schema.getSubscriptionType();
  const allowed = AGENT_ALLOWED[op.operation];
  const fields = topFieldNodes(op.selectionSet, fragmentsOf(document)).filter((node) => node.name.value !== "__typename");
  // Every field's name first: nothing outside the allow-list gets as far as its arguments.
  for (const node of fields) {
    const name = node.name.value;
    if (!allowed[name] || !root?.getFields()[name]) throw agentForbidden(`An agent key may not use ${op.operation} ${name}: it can only back up its own source "${agent.sourceName}"`, name);
  }
  // Nor, anywhere in what it selects, a secret or a presigned URL to the machine's screen, except
  // the upload tickets' URLs it exists to use.
  const sensitive = describeOperation(schema, document, operationName, variables ?? undefined).coordinates.filter((c) => SENSITIVE_FIELDS.has(c) && !AGENT_SENSITIVE_ALLOWED.has(c));
  if (sensitive.length) throw new AppError(ErrorCode.FORBIDDEN, `An agent key may not read ${sensitive.join(", ")}`, { reason: "AGENT_KEY_SCOPE", fields: sensitive });
  const coerced = getVariableValues(schema, op.variableDefinitions ?? [], variables ?? {});
  if (coerced.errors) throw agentForbidden("An agent key may not run this operation (its variables do not coerce)");
  for (const node of fields) {
    const name = node.name.value;
    const rule = allowed[name]!;
    const def = root!.getFields()[name]!;
    const args = getArgumentValues(def, node, coerced.coerced);
    let source: unknown;
    if ("sourceName" in rule) source = rule.sourceName(args);
    else {
      const backupId = rule.backupId(args);
      if (typeof backupId !== "string") throw agentForbidden(`${name} needs a backup of source "${agent.sourceName}"`, name);
      source = await ctx.services.agentKeys.sourceOfBackup(agent.userId, backupId);
      // No backup of the owner's by that id: the resolver answers NOT_FOUND as for anyone.
      if (source === null) continue;
    }
    if (typeof source !== "string" || source.trim() !== agent.sourceName)
      throw agentForbidden(`This agent key is for source "${agent.sourceName}" only: ${name} may not name another source or its backups`, name);
  }
}
