/**
 * A nullable GraphQL argument or input field may arrive as an explicit `null`, which the TypeScript
 * types (`filter?: X`) do not admit. For optional filters null means "not given": this turns the
 * object and each of its null fields into undefined before the values reach a service.
 */
export function withoutNulls<T extends object>(input: T | null | undefined): { [K in keyof T]?: Exclude<T[K], null> } | undefined {
  if (input === null || input === undefined) return undefined;
  return Object.fromEntries(Object.entries(input).filter(([, v]) => v !== null && v !== undefined)) as { [K in keyof T]?: Exclude<T[K], null> };
}
