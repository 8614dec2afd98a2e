import { ApolloServer } from "@apollo/server";
import { GraphQLError, GraphQLID, GraphQLInt, GraphQLList, GraphQLNonNull, GraphQLObjectType, GraphQLSchema, GraphQLString, execute, graphql, parse, type DocumentNode, type ExecutionResult } from "graphql";
import { compileQuery, type CompiledQuery } from "graphql-jit";
import { describe, expect, it } from "vitest";
import { jitEventExecutor, jitGateway } from "../../src/graphql/jit-executor";

/** A schema with what the product's has: lists of objects, a custom serialization, context use, typed errors and a non-null field that fails. */
function testSchema() {
  const Item: GraphQLObjectType = new GraphQLObjectType({
    name: "Item",
    fields: () => ({
      id: { type: new GraphQLNonNull(GraphQLID) },
      size: { type: GraphQLInt },
      createdAt: { type: GraphQLString, resolve: (item: { createdAt: Date }) => item.createdAt.toISOString() },
      owner: { type: GraphQLString, resolve: (_item, _args, ctx: { user?: string }) => ctx.user ?? null },
      broken: {
        type: new GraphQLNonNull(GraphQLString),
        resolve: () => {
          throw new GraphQLError("no such thing", { extensions: { code: "NOT_FOUND" } });
        },
      },
    }),
  });
  const items = [1, 2, 3].map((n) => ({ id: `i${n}`, size: n * 10, createdAt: new Date(Date.UTC(2026, 11, n)) }));
  return new GraphQLSchema({
    query: new GraphQLObjectType({
      name: "Query",
      fields: {
        items: { type: new GraphQLList(Item), args: { first: { type: new GraphQLNonNull(GraphQLInt) } }, resolve: (_r, args: { first: number }) => items.slice(0, args.first) },
        item: { type: Item, args: { id: { type: new GraphQLNonNull(GraphQLID) } }, resolve: (_r, args: { id: string }) => items.find((i) => i.id === args.id) },
        // An error without extensions (the product's AppError is one): Apollo reads `extensions.code` of each.
        failing: {
          type: GraphQLString,
          resolve: () => {
            throw new Error("no extensions");
          },
        },
        denied: {
          type: GraphQLString,
          resolve: () => {
            throw new GraphQLError("log in first", { extensions: { code: "UNAUTHENTICATED" } });
          },
        },
      },
    }),
  });
}

async function serverWith(schema: GraphQLSchema) {
  const compiled: string[] = [];
  const compile = (s: GraphQLSchema, document: DocumentNode, operationName?: string): CompiledQuery | ExecutionResult => {
    compiled.push(operationName ?? "");
    return compileQuery(s, document, operationName);
  };
  const apollo = new ApolloServer<{ user?: string }>({ gateway: jitGateway(schema, { compile }) });
  await apollo.start();
  const run = async (query: string, variables?: Record<string, unknown>, operationName?: string) => {
    const res = await apollo.executeOperation({ query, variables, operationName }, { contextValue: { user: "u1" } });
    if (res.body.kind !== "single") throw new Error("expected a single result");
    return { status: res.http.status, ...res.body.singleResult };
  };
  return { apollo, run, compiled };
}

describe("graphql-jit executor behind Apollo", () => {
  it("answers exactly as graphql-js does, the first time (graphql-js) and once compiled, errors and their codes included", async () => {
    const schema = testSchema();
    const { apollo, run, compiled } = await serverWith(schema);
    try {
      const query = `query Page($n: Int!) { items(first: $n) { id size createdAt owner } denied failing item(id: "i2") { id broken } }`;
      const expected = JSON.parse(JSON.stringify(await graphql({ schema, source: query, variableValues: { n: 2 }, contextValue: { user: "u1" } })));
      expect(expected.data.items).toHaveLength(2);
      expect(expected.errors.map((e: { extensions?: { code: string } }) => e.extensions?.code ?? "none").sort()).toEqual(["NOT_FOUND", "UNAUTHENTICATED", "none"]);
      const seen: string[] = [];
      for (let i = 0; i < 3; i++) {
        const answer = await run(query, { n: 2 });
        expect({ data: answer.data, errors: answer.errors?.map((e) => ({ message: e.message, path: e.path, locations: e.locations, code: e.extensions?.code })) }).toEqual({
          data: expected.data,
          errors: expected.errors.map((e: { message: string; path: unknown; locations: unknown }) => ({ message: e.message, path: e.path, locations: e.locations, code: expect.any(String) })),
        });
        seen.push(JSON.stringify(answer.errors?.map((e) => e.extensions?.code)));
        // Compiled on the second execution, once.
        expect(compiled).toEqual(i === 0 ? [] : ["Page"]);
      }
      // The same codes from graphql-js (the first run) and the compiled operation (Apollo's own
      // defaults: INTERNAL_SERVER_ERROR for the error without extensions).
      expect(new Set(seen).size).toBe(1);
      expect(JSON.parse(seen[0]!).sort()).toEqual(["INTERNAL_SERVER_ERROR", "NOT_FOUND", "UNAUTHENTICATED"]);
    } finally {
      await apollo.stop();
    }
  });

  it("variables that do not coerce are BAD_USER_INPUT with HTTP 400, before and after compilation", async () => {
    const { apollo, run, compiled } = await serverWith(testSchema());
    try {
      const query = `query Page($n: Int!) { items(first: $n) { id } }`;
      expect((await run(query, { n: 1 })).data).toEqual({ items: [{ id: "i1" }] });
      expect((await run(query, { n: 1 })).data).toEqual({ items: [{ id: "i1" }] });
      expect(compiled).toEqual(["Page"]);
      for (const variables of [{ n: "many" }, {}]) {
        const answer = await run(query, variables);
        expect(answer.data).toBeUndefined();
        expect(answer.status).toBe(400);
        expect(answer.errors?.map((e) => e.extensions?.code)).toEqual(["BAD_USER_INPUT"]);
        expect(answer.errors?.[0]?.message).toMatch(/^Variable "\$n"/);
      }
    } finally {
      await apollo.stop();
    }
  });

  it("a document with several operations runs the one named, each compiled on its own", async () => {
    const { apollo, run, compiled } = await serverWith(testSchema());
    try {
      const query = `query A { item(id: "i1") { id } } query B { item(id: "i3") { size } }`;
      for (let i = 0; i < 2; i++) {
        expect((await run(query, undefined, "A")).data).toEqual({ item: { id: "i1" } });
        expect((await run(query, undefined, "B")).data).toEqual({ item: { size: 30 } });
      }
      expect(compiled).toEqual(["A", "B"]);
    } finally {
      await apollo.stop();
    }
  });
});

/** A subscription field whose events carry the state, as recoveryProgress's do (the event is the root value of each execution). */
function subscriptionSchema() {
  type Event = { id: string; version: number; at: Date };
  const Progress = new GraphQLObjectType<Event, { user?: string }>({
    name: "Progress",
    fields: {
      id: { type: new GraphQLNonNull(GraphQLID) },
      version: { type: new GraphQLNonNull(GraphQLInt) },
      at: { type: GraphQLString, resolve: (p) => p.at.toISOString() },
      viewer: { type: GraphQLString, resolve: (_p, _a, ctx) => ctx.user ?? null },
      secret: {
        type: GraphQLString,
        resolve: (p) => {
          if (p.version === 2) throw new GraphQLError("not yours", { extensions: { code: "FORBIDDEN" } });
          return "s";
        },
      },
    },
  });
  return new GraphQLSchema({
    query: new GraphQLObjectType({ name: "Query", fields: { ok: { type: GraphQLString } } }),
    subscription: new GraphQLObjectType({
      name: "Subscription",
      fields: {
        progress: {
          type: Progress,
          args: { id: { type: new GraphQLNonNull(GraphQLID) } },
          // Each event is the root value; this resolver shapes it, as type-graphql's do.
          resolve: (event: Event, args: { id: string }) => (event.id === args.id ? event : null),
        },
      },
    }),
  });
}

describe("graphql-jit for each event of a fanned-out subscription", () => {
  it("gives what graphql-js's execute gives for every event, compiled on the second event and once, errors with their codes", async () => {
    const schema = subscriptionSchema();
    const compiled: string[] = [];
    const run = jitEventExecutor(schema, {
      compile: (s, document, operationName) => {
        compiled.push(operationName ?? "");
        return compileQuery(s, document, operationName);
      },
    });
    const document = parse(`subscription Watch($id: ID!) { progress(id: $id) { id version at viewer secret } }`);
    const args = { schema, document, operationName: "Watch", variableValues: { id: "r1" }, contextValue: { user: "u1" } };
    for (let version = 1; version <= 4; version++) {
      const rootValue = { id: "r1", version, at: new Date(Date.UTC(2026, 11, version)) };
      const expected = JSON.parse(JSON.stringify(await execute({ ...args, rootValue })));
      const answer = await run({ ...args, rootValue });
      expect(JSON.parse(JSON.stringify(answer))).toEqual(expected);
      expect(answer.data).toMatchObject({ progress: { id: "r1", version, viewer: "u1" } });
      expect(answer.errors?.map((e) => [e.message, e.extensions?.code])).toEqual(version === 2 ? [["not yours", "FORBIDDEN"]] : undefined);
      expect(answer.errors?.every((e) => e instanceof GraphQLError) ?? true).toBe(true);
      expect(compiled).toEqual(version === 1 ? [] : ["Watch"]);
    }
    // An event of another recovery resolves to null, as with graphql-js.
    expect((await run({ ...args, rootValue: { id: "r2", version: 9, at: new Date() } })).data).toEqual({ progress: null });
  });

  it("variables that do not coerce are refused in graphql-js's words, compiled or not", async () => {
    const schema = subscriptionSchema();
    const run = jitEventExecutor(schema);
    const document = parse(`subscription Watch($id: ID!) { progress(id: $id) { id } }`);
    const rootValue = { id: "r1", version: 1, at: new Date() };
    const expected = JSON.parse(JSON.stringify(await execute({ schema, document, variableValues: {}, rootValue })));
    expect(expected.errors[0].message).toMatch(/^Variable "\$id"/);
    for (let i = 0; i < 3; i++) expect(JSON.parse(JSON.stringify(await run({ schema, document, variableValues: {}, rootValue })))).toEqual(expected);
  });
});
