import { Kind, TypeInfo, getNamedType, getOperationAST, visit, visitWithTypeInfo, type DocumentNode, type FieldNode, type FragmentDefinitionNode, type GraphQLSchema, type SelectionSetNode, type ValueNode } from "graphql";
import type { Context } from "./context";
import { sensitiveField, supportReadOnly } from "../shared/errors";

/** The HTTP header (and nothing else: WebSocket connections that ask to act for someone are refused) naming the customer support acts for. */
export const ACT_FOR_HEADER = "x-reclo-act-for";

/**
 * Fields support never reads while acting for a customer (the whole operation is refused with
 * SENSITIVE_FIELD, naming them): secrets, keys, device configurations, presigned URLs to customer
 * data, the machine's own console output.
 */
export const SENSITIVE_FIELDS: ReadonlyMap<string, string> = new Map([
  ["AuthPayload.token", "a session token"],
  ["AccessKey.wireguardConfig", "a device's private key and configuration"],
  ["AccessKey.qrCodeSvg", "a device's private key and configuration, as a QR code"],
  ["Webhook.signingSecret", "the webhook's signing secret"],
  ["Webhook.url", "the customer's endpoint (chat webhook URLs carry their own secret)"],
  ["ChunkUploadTicket.url", "a presigned upload URL"],
  ["Screenshot.url", "a presigned URL of the machine's screen"],
  ["Instance.screenshot", "a presigned URL of the machine's screen"],
  ["BootCheck.screenshotUrl", "a presigned URL of the machine's screen"],
  ["BackupVerification.screenshotUrl", "a presigned URL of the machine's screen"],
  ["Instance.consoleOutput", "the machine's serial console (may print keys and passwords)"],
  ["CreatedAgentKey.secret", "an agent key"],
]);

/**
 * Fields whose names look like secrets (url, token, secret, key, config, password…) but are not,
 * each with why: a test (test/unit/support-sensitive-fields.test.ts) fails on any such field in
 * neither list, so a new one cannot reach support unclassified.
 */
export const ALLOWED_LOOKALIKES: ReadonlyMap<string, string> = new Map([
  ["Instance.accessKeys", "the list of device keys: its secret fields are sensitive themselves"],
  ["Instance.privateAccess", "endpoint, ports and tunnel address: no key"],
  ["Instance.privateAddress", "an address inside the provider's network"],
  ["BootCheck.screenText", "the words on the booting machine's screen: what support needs to see why it did not start"],
  ["BackupVerification.screenText", "the words on the booting machine's screen: what support needs to see why it did not start"],
  ["RecoveryResourceIds.composedKey", "an object key (a name in the bucket, not a URL)"],
  ["RecoveryDiagnostics.historyUrl", "a link into Temporal's UI (needs Temporal's own access)"],
  ["Mutation.createAccessKey", "a mutation: refused while acting"],
  ["Mutation.revokeAccessKey", "a mutation: refused while acting"],
  ["Mutation.requestPasswordReset", "a mutation: refused while acting"],
  ["Mutation.resetPassword", "a mutation: refused while acting"],
  ["Mutation.createAgentKey", "a mutation: refused while acting"],
  ["Mutation.revokeAgentKey", "a mutation: refused while acting"],
  ["Mutation.revokeAllAgentKeys", "a mutation: refused while acting"],
  ["Query.agentKeys", "the list of agent keys: never their secret (only createAgentKey's answer has it)"],
  ["CreatedAgentKey.agentKey", "the key's description, without its secret"],
]);

/** What a READ_AND_RETRY grant lets support do. */
export const RETRY_MUTATIONS: ReadonlySet<string> = new Set(["retryRecovery", "cancelRecovery"]);

/** What an operation does, as the audit log keeps it. */
export interface ActingOperation {
  type: "query" | "mutation" | "subscription";
  name: string | null;
  /** Top-level fields, in order. */
  fields: string[];
  /** Every "Type.field" coordinate the document selects. */
  coordinates: string[];
  /** Ids the operation names (variables and literal arguments called id or …Id). */
  ids: string[];
}

const ID_NAME = /^(id|.*Id|.*Ids)$/;

function idsInValue(v: unknown, name: string | undefined, out: Set<string>): void {
  if (typeof v === "string" && name && ID_NAME.test(name)) out.add(v);
  else if (Array.isArray(v)) for (const x of v) idsInValue(x, name, out);
  else if (v && typeof v === "object") for (const [k, x] of Object.entries(v)) idsInValue(x, k, out);
}

function idsInLiteral(node: ValueNode, name: string, out: Set<string>): void {
  if (node.kind === Kind.STRING && ID_NAME.test(name)) out.add(node.value);
  else if (node.kind === Kind.LIST) for (const x of node.values) idsInLiteral(x, name, out);
  else if (node.kind === Kind.OBJECT) for (const f of node.fields) idsInLiteral(f.value, f.name.value, out);
}

/** A document's fragment definitions by name. */
export function fragmentsOf(document: DocumentNode): Map<string, FragmentDefinitionNode> {
  return new Map(document.definitions.flatMap((d) => (d.kind === Kind.FRAGMENT_DEFINITION ? [[d.name.value, d] as const] : [])));
}

/** Top-level field nodes of a selection set, through fragment spreads and inline fragments. */
export function topFieldNodes(set: SelectionSetNode, fragments: Map<string, FragmentDefinitionNode>, seen = new Set<string>()): FieldNode[] {
  return set.selections.flatMap((s) => {
    if (s.kind === Kind.FIELD) return [s];
    if (s.kind === Kind.INLINE_FRAGMENT) return topFieldNodes(s.selectionSet, fragments, seen);
    const f = fragments.get(s.name.value);
    if (!f || seen.has(f.name.value)) return [];
    seen.add(f.name.value);
    return topFieldNodes(f.selectionSet, fragments, seen);
  });
}

/** Operations that read nothing of the customer's (introspection, the banner's viewer): not audited. */
const NOT_CUSTOMER_DATA = new Set(["__schema", "__type", "__typename", "viewer"]);

/** Reads a (validated) operation: its type, top-level fields, every field coordinate and the ids it names. */
export function describeOperation(schema: GraphQLSchema, document: DocumentNode, operationName: string | null | undefined, variables: Record<string, unknown> | undefined): ActingOperation {
  const op = getOperationAST(document, operationName);
  const coordinates = new Set<string>();
  const ids = new Set<string>();
  const typeInfo = new TypeInfo(schema);
  visit(
    document,
    visitWithTypeInfo(typeInfo, {
      Field(node) {
        const parent = typeInfo.getParentType();
        if (parent && !node.name.value.startsWith("__")) coordinates.add(`${getNamedType(parent).name}.${node.name.value}`);
        for (const arg of node.arguments ?? []) idsInLiteral(arg.value, arg.name.value, ids);
      },
    }),
  );
  idsInValue(variables ?? {}, undefined, ids);
  return {
    type: op?.operation ?? "query",
    name: op?.name?.value ?? operationName ?? null,
    fields: op ? [...new Set(topFieldNodes(op.selectionSet, fragmentsOf(document)).map((f) => f.name.value))] : [],
    coordinates: [...coordinates],
    ids: [...ids],
  };
}

/**
 * Support acting for a customer: refuses what the grant does not allow (any mutation on a READ
 * grant, anything but retry/cancel of a recovery on READ_AND_RETRY; subscriptions) and any
 * sensitive field, then writes the one audit record of the operation (refused ones too) before
 * anything runs. An audit record that cannot be written refuses the operation.
 */
export async function checkActingOperation(ctx: Context, schema: GraphQLSchema, document: DocumentNode, operationName: string | null | undefined, variables: Record<string, unknown> | undefined): Promise<void> {
  const customer = ctx.actingFor;
  const grant = ctx.grant;
  if (!customer || !grant || !ctx.auth) return;
  const op = describeOperation(schema, document, operationName, variables);
  const sensitive = op.coordinates.filter((c) => SENSITIVE_FIELDS.has(c));
  let refusal: Error | undefined;
  const retryOnly = op.type === "mutation" && grant.scope === "READ_AND_RETRY" && op.fields.length > 0 && op.fields.every((f) => RETRY_MUTATIONS.has(f));
  if (op.type !== "query" && !retryOnly) refusal = supportReadOnly(grant.scope, op.fields);
  else if (sensitive.length) refusal = sensitiveField(sensitive);
  else if (op.type === "query" && op.fields.every((f) => NOT_CUSTOMER_DATA.has(f))) return;
  await ctx.services.audit.record({
    userId: customer.id,
    actor: { id: ctx.auth.user.id, role: ctx.auth.user.role },
    action: refusal ? "support.refused" : op.type === "query" ? "support.read" : "support.action",
    target: `${op.type} ${op.name ?? "(anonymous)"}: ${op.fields.join(", ")}`,
    detail: { operation: op.name, type: op.type, fields: op.fields, ids: op.ids, grantId: grant.id, grantScope: grant.scope, ...(refusal ? { refused: refusal.message } : {}) },
    ip: ctx.ip,
    requestId: ctx.requestId,
  });
  if (refusal) throw refusal;
}
