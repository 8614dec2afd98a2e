import * as drizzleOrm from "drizzle-orm";
import { Column, DrizzleQueryError, SQL, Subquery, fillPlaceholders, is } from "drizzle-orm";
import { MySqlDateTime } from "drizzle-orm/mysql-core";
import type { Db, Prepared } from "./client";

/**
 * A select that runs on every request (a page of a list, an object by id), prepared once: drizzle
 * builds its SQL, and its rows are mapped by a mapper made once per statement instead of
 * drizzle's generic one.
 *
 * Why: drizzle maps every value of every row through `mapResultRow`, which for each column tests
 * the field's class (`is` walks the prototype chain), iterates the field's path and allocates on
 * the way, and hands each DATETIME to a `typeCast` function that makes mysql2 wrap every field of
 * every row in an object. For a page of 20 backups (25 values a row) that was 854 ms of self time in
 * the reducer, 384 ms in mysql2's field wrapper and 298 ms parsing dates of a 16.9 s profile of the
 * API under load (bench/graphql), plus their garbage.
 *
 * The values are the ones drizzle gives: the same SQL and bound parameters, DATETIMEs read as text
 * (mysql2's `dateStrings`, what drizzle's typeCast returns with `field.string()`) and then each
 * column's own `mapFromDriverValue`, failures wrapped in DrizzleQueryError as drizzle does. Only
 * plain selects (no joins: drizzle's null-object handling for joined tables is not repeated) on
 * the pool's handle; a transaction's handle gets drizzle's own prepared query.
 */

interface Decoder {
  mapFromDriverValue(value: unknown): unknown;
}

interface SelectBuilder {
  toSQL(): { sql: string; params: unknown[] };
  prepare(): unknown;
}

interface Pool {
  query(options: { sql: string; rowsAsArray: true; dateStrings: true }, values: unknown[]): Promise<[unknown, unknown]>;
}

/** drizzle's own ordering of a selection's fields (the order of the SELECT list it builds); internal to drizzle, so not in its types. */
const orderSelectedFields = (drizzleOrm as unknown as { orderSelectedFields(fields: Record<string, unknown>): { path: string[]; field: unknown }[] }).orderSelectedFields;

function decoderOf(field: unknown): Decoder {
  if (is(field, Column)) return field as unknown as Decoder;
  // `decoder` is internal to drizzle's SQL (not in its types); mapResultRow reads it the same way.
  const decoder = (sql: SQL) => (sql as unknown as { decoder: Decoder }).decoder;
  if (is(field, SQL)) return decoder(field);
  if (is(field, Subquery)) return decoder((field as unknown as { _: { sql: SQL } })._.sql);
  return decoder((field as SQL.Aliased).sql);
}

/** Digits of `s` from `at`, `len` of them, as a number (NaN at anything else). */
function digits(s: string, at: number, len: number): number {
  let n = 0;
  for (let k = at; k < at + len; k++) {
    const c = s.charCodeAt(k) - 48;
    if (c < 0 || c > 9) return NaN;
    n = n * 10 + c;
  }
  return n;
}

/**
 * A DATETIME's text ("YYYY-MM-DD HH:MM:SS" with 0 or 3 decimals, the pool's time zone Z) as the
 * Date drizzle's datetime column makes of it (`new Date(text.replace(" ", "T") + "Z")`), about
 * three times faster; any other form (more decimals, a zero date, a year before 100) goes to the
 * column itself.
 */
function dateTime(text: string, column: Decoder): unknown {
  const len = text.length;
  if ((len === 19 || len === 23) && text.charCodeAt(4) === 45 && text.charCodeAt(10) === 32) {
    const year = digits(text, 0, 4);
    const ms = Date.UTC(year, digits(text, 5, 2) - 1, digits(text, 8, 2), digits(text, 11, 2), digits(text, 14, 2), digits(text, 17, 2), len === 23 ? digits(text, 20, 3) : 0);
    if (year >= 100 && !Number.isNaN(ms)) return new Date(ms);
  }
  return column.mapFromDriverValue(text);
}

type Tree = Map<string, number | Tree>;

/**
 * A row mapper for the selection's fields: the nested object drizzle's mapResultRow builds (keys
 * in the same order), made by a function generated once per statement that builds it as one
 * object literal, each value through its own decoder at its own call site.
 */
function rowMapper(fields: { path: string[]; field: unknown }[]): (row: unknown[]) => Record<string, unknown> {
  const decoders = fields.map(({ field }) => decoderOf(field));
  // drizzle's own DATETIME (mode "date") decoder, not a subclass that decodes differently.
  const dates = fields.map(({ field }) => is(field, MySqlDateTime) && (field as Decoder).mapFromDriverValue === (MySqlDateTime.prototype as Decoder).mapFromDriverValue);
  const root: Tree = new Map();
  fields.forEach(({ path }, i) => {
    let node = root;
    for (const key of path.slice(0, -1)) {
      let next = node.get(key);
      if (typeof next !== "object") node.set(key, (next = new Map()));
      node = next;
    }
    node.set(path[path.length - 1]!, i);
  });
  const value = (i: number) => `(r[${i}] === null ? null : ${dates[i] ? `date(r[${i}], d[${i}])` : `d[${i}].mapFromDriverValue(r[${i}])`})`;
  // Keys are the schema's property names; a literal's "__proto__" would set the prototype instead.
  const literal = (node: Tree): string =>
    `{${[...node].map(([key, v]) => {
      if (key === "__proto__") throw new Error("a selection key named __proto__");
      return `${JSON.stringify(key)}: ${typeof v === "number" ? value(v) : literal(v)}`;
    })}}`;
  const make = new Function("d", "date", `return (r) => (${literal(root)});`) as (d: Decoder[], date: typeof dateTime) => (row: unknown[]) => Record<string, unknown>;
  return make(decoders, dateTime);
}

export function prepareSelect(db: Db, query: SelectBuilder): Prepared {
  const pool = (db as { $client?: Pool }).$client;
  // The selection and the joins as drizzle's own prepare() reads them off the builder (internal, so not in its types).
  const { config, joinsNotNullableMap } = query as unknown as { config: { fields: Record<string, unknown> }; joinsNotNullableMap?: Record<string, boolean> };
  if (!pool || (joinsNotNullableMap && Object.keys(joinsNotNullableMap).length > 1)) return query.prepare() as Prepared;
  const { sql, params } = query.toSQL();
  const fields = orderSelectedFields(config.fields);
  const map = rowMapper(fields);
  const options = { sql, rowsAsArray: true, dateStrings: true } as const;
  return {
    async execute(values: Record<string, unknown>) {
      const bound = fillPlaceholders(params, values);
      let rows: unknown[][];
      try {
        [rows] = (await pool.query(options, bound)) as [unknown[][], unknown];
      } catch (err) {
        throw new DrizzleQueryError(sql, bound, err as Error);
      }
      return rows.map(map);
    },
  };
}
