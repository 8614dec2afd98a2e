import {
  getNamedType,
  isObjectType,
  isInterfaceType,
  Kind,
  type DocumentNode,
  type FragmentDefinitionNode,
  type GraphQLNamedType,
  type GraphQLSchema,
  type OperationDefinitionNode,
  type SelectionSetNode,
  type ValueNode,
} from "graphql";
import { badInput, type AppError } from "../errors";

export interface QueryLimits {
  maxDepth: number;
  maxCost: number;
  maxPageSize: number;
  defaultPageSize: number;
}

export interface OperationCost {
  depth: number;
  cost: number;
}

/**
 * Static analysis of an operation before any resolver runs: nesting depth, an estimated cost
 * (every field costs 1, multiplied by the page size of each enclosing connection) and page sizes.
 * Introspection fields are not counted (GraphiQL's introspection query is deep but cheap).
 */
export function measureOperation(
  schema: GraphQLSchema,
  document: DocumentNode,
  operationName: string | null | undefined,
  variables: Record<string, unknown> | null | undefined,
  limits: QueryLimits,
): OperationCost | AppError {
  const ops = document.definitions.filter((d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION);
  const op = operationName ? ops.find((o) => o.name?.value === operationName) : ops[0];
  if (!op) return { depth: 0, cost: 0 };
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const d of document.definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) fragments.set(d.name.value, d);
  const root = op.operation === "query" ? schema.getQueryType() : op.operation === "mutation" ? schema.getMutationType() : schema.getSubscriptionType();
  if (!root) return { depth: 0, cost: 0 };

  let pageError: AppError | undefined;
  const intValue = (node: ValueNode | undefined): number | undefined => {
    if (!node) return undefined;
    if (node.kind === Kind.INT) return Number(node.value);
    if (node.kind === Kind.VARIABLE) {
      const v = variables?.[node.name.value];
      return typeof v === "number" ? v : undefined;
    }
    return undefined;
  };

  const walk = (set: SelectionSetNode, parent: GraphQLNamedType, depth: number, multiplier: number, seen: Set<string>): OperationCost => {
    let maxDepth = depth - 1;
    let cost = 0;
    for (const sel of set.selections) {
      if (sel.kind === Kind.FIELD) {
        const name = sel.name.value;
        if (name.startsWith("__")) continue;
        const fields = isObjectType(parent) || isInterfaceType(parent) ? parent.getFields() : {};
        const def = fields[name];
        const type = def ? getNamedType(def.type) : parent;
        const first = intValue(sel.arguments?.find((a) => a.name.value === "first")?.value);
        if (first !== undefined && (first > limits.maxPageSize || first < 0) && !pageError)
          pageError = badInput(`\`first\` must be between 0 and ${limits.maxPageSize}`, { limit: "PAGE_SIZE", field: name, maxPageSize: limits.maxPageSize });
        const pageFactor = type.name.endsWith("Connection") ? Math.max(1, first ?? limits.defaultPageSize) : 1;
        cost += multiplier;
        maxDepth = Math.max(maxDepth, depth);
        if (sel.selectionSet) {
          const child = walk(sel.selectionSet, type, depth + 1, multiplier * pageFactor, seen);
          cost += child.cost;
          maxDepth = Math.max(maxDepth, child.depth);
        }
      } else {
        let fragSet: SelectionSetNode | undefined;
        let typeName: string | undefined;
        if (sel.kind === Kind.INLINE_FRAGMENT) {
          fragSet = sel.selectionSet;
          typeName = sel.typeCondition?.name.value;
        } else {
          const frag = fragments.get(sel.name.value);
          if (!frag || seen.has(frag.name.value)) continue;
          seen = new Set(seen).add(frag.name.value);
          fragSet = frag.selectionSet;
          typeName = frag.typeCondition.name.value;
        }
        const fragType = (typeName && schema.getType(typeName)) || parent;
        const child = walk(fragSet, fragType, depth, multiplier, seen);
        cost += child.cost;
        maxDepth = Math.max(maxDepth, child.depth);
      }
    }
    return { depth: maxDepth, cost };
  };

  const result = walk(op.selectionSet, root, 1, 1, new Set());
  if (pageError) return pageError;
  if (result.depth > limits.maxDepth)
    return badInput(`Query is too deep: depth ${result.depth} exceeds the limit of ${limits.maxDepth}`, { limit: "DEPTH", depth: result.depth, maxDepth: limits.maxDepth });
  if (result.cost > limits.maxCost)
    return badInput(`Query is too expensive: estimated cost ${result.cost} exceeds the limit of ${limits.maxCost}; ask for smaller pages or fewer nested fields`, {
      limit: "COST",
      cost: result.cost,
      maxCost: limits.maxCost,
    });
  return result;
}
