import { ArgsType, Field, Int, ObjectType, type ClassType } from "type-graphql";

@ObjectType({ description: "Relay page information" })
export class PageInfo {
  @Field()
  hasNextPage: boolean;

  @Field(() => String, { nullable: true })
  endCursor: string | null;

  @Field(() => String, { nullable: true })
  startCursor: string | null;
}

@ArgsType()
export class PageArgsInput {
  @Field(() => Int, { nullable: true, description: "Page size (default 20, at most the server's MAX_PAGE_SIZE, 100 by default)" })
  first?: number;

  @Field(() => String, { nullable: true, description: "`endCursor` of the previous page" })
  after?: string;
}

/** Builds `<Name>Connection` and `<Name>Edge` object types for a node type (Relay cursor connections). */
export function Connection<TNode extends object>(name: string, nodeType: ClassType<TNode>) {
  @ObjectType(`${name}Edge`)
  class Edge {
    @Field()
    cursor: string;

    @Field(() => nodeType)
    node: TNode;
  }

  @ObjectType(`${name}Connection`)
  class ConnectionType {
    @Field(() => [Edge])
    edges: Edge[];

    @Field(() => PageInfo)
    pageInfo: PageInfo;

    @Field(() => Int, { description: "Number of matching objects over all pages" })
    totalCount: number;
  }
  return ConnectionType;
}
