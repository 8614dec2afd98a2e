import { GraphQLSafeInt } from "graphql-scalars";

/** Byte counts and sizes exceed GraphQL's 32-bit Int: SafeInt carries integers up to 2^53 - 1. */
export const SafeInt = GraphQLSafeInt;
