import {
  getNamedType,
  isInterfaceType,
  isObjectType,
  Kind,
  Lexer,
  SchemaMetaFieldDef,
  Source,
  TokenKind,
  TypeMetaFieldDef,
  TypeNameMetaFieldDef,
  type DocumentNode,
  type FragmentDefinitionNode,
  type GraphQLField,
  type GraphQLNamedType,
  type GraphQLSchema,
  type OperationDefinitionNode,
  type SelectionSetNode,
  type ValueNode,
} from "graphql";
import { AppError, badInput } from "../shared/errors";

/**
 * Request limits, checked before any resolver runs and before any authentication work.
 *
 * One pass over the operation computes depth, estimated cost, aliases and root mutations. Each
 * fragment is summarised once (its summary does not depend on where it is spread: its fields are
 * looked up on its own type condition, and cost is linear in the enclosing page multiplier) and
 * the summary is reused for every further spread, so the work is linear in the size of the
 * document however the fragments nest. Every counter only grows, and a fragment's or field's
 * summary is a lower bound of the operation's, so the pass stops with a typed error as soon as
 * any counter passes its limit.
 *
 * Introspection is counted like any other field (`__schema` itself at INTROSPECTION_SCHEMA_COST,
 * the full schema walk it stands for); `__typename` is an ordinary cost-1 leaf.
 */

export type LimitKind = "DEPTH" | "COST" | "PAGE_SIZE" | "BODY_SIZE" | "TOKENS" | "ALIASES" | "MUTATIONS" | "SUBSCRIPTIONS_PER_CONNECTION" | "SUBSCRIPTIONS_PER_USER";

export interface QueryLimits {
  maxDepth: number;
  maxCost: number;
  maxPageSize: number;
  defaultPageSize: number;
  maxTokens: number;
  maxAliases: number;
  /** Root fields of one mutation operation. */
  maxMutations: number;
  /** Cost of one evaluation of a field in EXPENSIVE_FIELDS. */
  expensiveFieldCost: number;
}

/**
 * Fields that call a provider, check a whole manifest against the store, or reach out to a user's
 * URL (adding a webhook resolves it; a test POSTs to it): priced and rate-limited
 * per user. (`BackupVerification.screenshotUrl` is not among them: it only signs a URL locally.)
 */
export const EXPENSIVE_FIELDS: ReadonlySet<string> = new Set(["Backup.restorable", "Instance.consoleOutput", "Instance.screenshot", "Mutation.sendTestWebhook", "Mutation.addWebhook"]);
/** Mutations anyone may call that cost argon2 work or send mail (sessions, accounts, password resets): at most one per request. */
export const CREDENTIAL_MUTATIONS: ReadonlySet<string> = new Set(["signUp", "logIn", "requestPasswordReset", "resetPassword"]);
/** `__schema` walks the whole schema: priced like a large page. */
export const INTROSPECTION_SCHEMA_COST = 1000;

export interface OperationAnalysis {
  operation: "query" | "mutation" | "subscription" | undefined;
  depth: number;
  cost: number;
  aliases: number;
  /** Root fields of a mutation. */
  mutations: number;
  /** Selects `__schema` or `__type`. */
  introspection: boolean;
  /** Selections of EXPENSIVE_FIELDS in the expanded operation (page sizes not applied). */
  expensiveFields: number;
}

/** What one selection set (with its fragments expanded) adds up to, at page multiplier 1. */
interface Summary {
  cost: number;
  /** Levels of fields below (and including) this set; 0 for a set without fields. */
  depth: number;
  aliases: number;
  /** Fields at this set's own level (through fragments, not through fields). */
  levelFields: number;
  levelCredentialFields: number;
  introspection: boolean;
  expensiveFields: number;
}

class LimitExceeded extends Error {
  constructor(readonly error: AppError) {
    super(error.message);
  }
}

const empty = (): Summary => ({ cost: 0, depth: 0, aliases: 0, levelFields: 0, levelCredentialFields: 0, introspection: false, expensiveFields: 0 });

/**
 * Counts the lexical tokens of a document, stopping at `maxTokens + 1`: a document over the limit
 * is refused before it is parsed (parsing and validation are then bounded by the limit too).
 * Returns the count, or the TOKENS error. Syntax errors are left to the parser.
 */
export function checkTokens(query: string, maxTokens: number): number | AppError {
  const lexer = new Lexer(new Source(query));
  let count = 0;
  try {
    while (lexer.advance().kind !== TokenKind.EOF) {
      if (++count > maxTokens) return badInput(`Document has more than ${maxTokens} tokens; send a smaller document`, { limit: "TOKENS", maxTokens });
    }
  } catch {
    // the parser reports the syntax error with its location
  }
  return count;
}

/**
 * The path of the first string in a request's variables that is not well-formed UTF-16 (an
 * unpaired surrogate, which JSON's "\ud800" escape can carry): no column can store it (utf8mb4
 * refuses it), so it is bad input here rather than a database error later. String literals in the
 * document need no check: graphql-js refuses such escapes while parsing.
 */
export function malformedText(value: unknown, path: string): string | undefined {
  if (typeof value === "string") return /\p{Cs}/u.test(value) ? path : undefined;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const bad = malformedText(value[i], `${path}[${i}]`);
      if (bad) return bad;
    }
  } else if (value && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) {
      const bad = malformedText(v, `${path}.${k}`);
      if (bad) return bad;
    }
  }
  return undefined;
}

/** The longest variables (as JSON) whose analysis is kept; larger ones are analysed every time. */
const MAX_CACHED_VARIABLES_JSON = 512;
/** Analyses kept per document: one per distinct set of variables (page sizes), bounded against a client that varies them. */
const MAX_ANALYSES_PER_DOCUMENT = 16;

/**
 * analyzeOperation for one schema and one set of limits, remembering each document's successful
 * analysis per operation name and variables. The same document object comes back for the same
 * query text (Apollo's and the WebSocket server's document caches), so a repeated request is not
 * walked again: walking the backups page's document was 231 ms of a 16.9 s profile of the API
 * under load (bench/graphql). Refusals are not kept (each is made afresh); the same variables give
 * the same unicode check, so a kept success stands for it too.
 */
export function operationAnalyzer(
  schema: GraphQLSchema,
  limits: QueryLimits,
): (document: DocumentNode, operationName: string | null | undefined, variables: Record<string, unknown> | null | undefined) => OperationAnalysis | AppError {
  const kept = new WeakMap<DocumentNode, Map<string, OperationAnalysis>>();
  return (document, operationName, variables) => {
    const vars = JSON.stringify(variables ?? null);
    const key = vars.length <= MAX_CACHED_VARIABLES_JSON ? `${operationName ?? ""}\n${vars}` : undefined;
    const byKey = kept.get(document);
    const known = key === undefined ? undefined : byKey?.get(key);
    if (known) return known;
    const analysis = analyzeOperation(schema, document, operationName, variables, limits);
    if (key !== undefined && !(analysis instanceof AppError)) {
      if (!byKey) kept.set(document, new Map([[key, Object.freeze(analysis)]]));
      else if (byKey.size < MAX_ANALYSES_PER_DOCUMENT) byKey.set(key, Object.freeze(analysis));
    }
    return analysis;
  };
}

/** Depth, cost, aliases, root mutations and page sizes of the selected operation, or the first limit it passes. */
export function analyzeOperation(
  schema: GraphQLSchema,
  document: DocumentNode,
  operationName: string | null | undefined,
  variables: Record<string, unknown> | null | undefined,
  limits: QueryLimits,
): OperationAnalysis | AppError {
  const ops = document.definitions.filter((d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION);
  const op = operationName ? ops.find((o) => o.name?.value === operationName) : ops.length === 1 ? ops[0] : undefined;
  const none: OperationAnalysis = { operation: undefined, depth: 0, cost: 0, aliases: 0, mutations: 0, introspection: false, expensiveFields: 0 };
  if (!op) return none; // graphql-js answers "unknown operation" without running anything
  const badText = malformedText(variables, "$");
  if (badText) return badInput(`${badText} is not valid Unicode text (it has an unpaired surrogate)`, { field: badText });
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const d of document.definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) fragments.set(d.name.value, d);
  const root = op.operation === "query" ? schema.getQueryType() : op.operation === "mutation" ? schema.getMutationType() : schema.getSubscriptionType();
  if (!root) return { ...none, operation: op.operation };
  const mutationType = schema.getMutationType();
  const queryType = schema.getQueryType();

  // Page sizes from literals, variables, or the variable's default.
  const defaults = new Map<string, ValueNode>();
  for (const v of op.variableDefinitions ?? []) if (v.defaultValue) defaults.set(v.variable.name.value, v.defaultValue);
  const intValue = (node: ValueNode | undefined): number | undefined => {
    if (!node) return undefined;
    if (node.kind === Kind.INT) return Number(node.value);
    if (node.kind === Kind.VARIABLE) {
      const v = variables?.[node.name.value];
      if (typeof v === "number") return v;
      if (v === undefined) return intValue(defaults.get(node.name.value));
    }
    return undefined;
  };

  const fieldDef = (parent: GraphQLNamedType | undefined, name: string): GraphQLField<unknown, unknown> | undefined => {
    if (name === "__typename") return TypeNameMetaFieldDef;
    if (parent === queryType && name === "__schema") return SchemaMetaFieldDef;
    if (parent === queryType && name === "__type") return TypeMetaFieldDef;
    return parent && (isObjectType(parent) || isInterfaceType(parent)) ? parent.getFields()[name] : undefined;
  };

  const check = (s: Summary, parent: GraphQLNamedType | undefined) => {
    if (s.depth > limits.maxDepth)
      throw new LimitExceeded(badInput(`Query is too deep: depth ${s.depth} exceeds the limit of ${limits.maxDepth}`, { limit: "DEPTH", depth: s.depth, maxDepth: limits.maxDepth }));
    if (s.cost > limits.maxCost)
      throw new LimitExceeded(
        badInput(`Query is too expensive: estimated cost ${s.cost} exceeds the limit of ${limits.maxCost}; ask for smaller pages or fewer nested fields`, {
          limit: "COST",
          cost: s.cost,
          maxCost: limits.maxCost,
        }),
      );
    if (s.aliases > limits.maxAliases)
      throw new LimitExceeded(badInput(`Too many aliases: more than ${limits.maxAliases} in one operation`, { limit: "ALIASES", aliases: s.aliases, maxAliases: limits.maxAliases }));
    if (parent !== undefined && parent === mutationType) {
      if (s.levelCredentialFields > 1)
        throw new LimitExceeded(badInput(`Only one of ${[...CREDENTIAL_MUTATIONS].map((f) => `\`${f}\``).join(", ")} may appear in a request, once`, { limit: "MUTATIONS", field: [...CREDENTIAL_MUTATIONS].join("|"), maxMutations: 1 }));
      if (s.levelFields > limits.maxMutations)
        throw new LimitExceeded(badInput(`Too many mutations: more than ${limits.maxMutations} in one request`, { limit: "MUTATIONS", mutations: s.levelFields, maxMutations: limits.maxMutations }));
    }
  };

  const add = (into: Summary, s: Summary, multiplier = 1) => {
    into.cost += multiplier * s.cost;
    into.depth = Math.max(into.depth, s.depth);
    into.aliases += s.aliases;
    into.introspection ||= s.introspection;
    into.expensiveFields += s.expensiveFields;
  };

  const memo = new Map<string, Summary | "visiting">();
  const fragment = (name: string): Summary => {
    const known = memo.get(name);
    if (known === "visiting") return empty(); // a cycle: invalid, reported by validation
    if (known) return known;
    const frag = fragments.get(name);
    if (!frag) return empty();
    memo.set(name, "visiting");
    const s = summarize(frag.selectionSet, schema.getType(frag.typeCondition.name.value) ?? undefined);
    memo.set(name, s);
    return s;
  };

  function summarize(set: SelectionSetNode, parent: GraphQLNamedType | undefined): Summary {
    const s = empty();
    for (const sel of set.selections) {
      if (sel.kind === Kind.FIELD) {
        const name = sel.name.value;
        const def = fieldDef(parent, name);
        const type = def ? getNamedType(def.type) : undefined;
        const coordinate = `${parent?.name}.${name}`;
        const first = intValue(sel.arguments?.find((a) => a.name.value === "first")?.value);
        if (first !== undefined && (first > limits.maxPageSize || first < 0 || !Number.isInteger(first)))
          throw new LimitExceeded(badInput(`\`first\` must be between 0 and ${limits.maxPageSize}`, { limit: "PAGE_SIZE", field: name, maxPageSize: limits.maxPageSize }));
        const pageFactor = type?.name.endsWith("Connection") ? Math.max(1, first ?? limits.defaultPageSize) : 1;
        const expensive = EXPENSIVE_FIELDS.has(coordinate);
        const own = expensive ? limits.expensiveFieldCost : def === SchemaMetaFieldDef ? INTROSPECTION_SCHEMA_COST : 1;
        const field: Summary = { ...empty(), cost: own, depth: 1, aliases: sel.alias ? 1 : 0, expensiveFields: expensive ? 1 : 0 };
        field.introspection = def === SchemaMetaFieldDef || def === TypeMetaFieldDef;
        if (sel.selectionSet) {
          const child = summarize(sel.selectionSet, type);
          field.depth += child.depth;
          field.cost += pageFactor * child.cost;
          field.aliases += child.aliases;
          field.introspection ||= child.introspection;
          field.expensiveFields += child.expensiveFields;
        }
        add(s, field);
        s.levelFields += 1;
        if (parent === mutationType && CREDENTIAL_MUTATIONS.has(name)) s.levelCredentialFields += 1;
      } else {
        const child =
          sel.kind === Kind.INLINE_FRAGMENT
            ? summarize(sel.selectionSet, sel.typeCondition ? (schema.getType(sel.typeCondition.name.value) ?? undefined) : parent)
            : fragment(sel.name.value);
        add(s, child);
        s.levelFields += child.levelFields;
        s.levelCredentialFields += child.levelCredentialFields;
      }
      check(s, parent);
    }
    return s;
  }

  try {
    const s = summarize(op.selectionSet, root);
    return {
      operation: op.operation,
      depth: s.depth,
      cost: s.cost,
      aliases: s.aliases,
      mutations: op.operation === "mutation" ? s.levelFields : 0,
      introspection: s.introspection,
      expensiveFields: s.expensiveFields,
    };
  } catch (err) {
    if (err instanceof LimitExceeded) return err.error;
    throw err;
  }
}
