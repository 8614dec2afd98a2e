import { ReCloClient } from "../client/graphql-client";
import type { Settings } from "./config-file";
import { notLoggedIn } from "./errors";

/** The API clients a command uses (with the CLI's user agent), and paging through connections. */

const USER_AGENT = "reclo-cli/0.1";

export function anonymousClient(settings: Settings): ReCloClient {
  return new ReCloClient({ url: settings.url, headers: { "user-agent": USER_AGENT } });
}

export function authedClient(settings: Settings): ReCloClient {
  if (!settings.token) throw notLoggedIn();
  return new ReCloClient({ url: settings.url, token: settings.token, headers: { "user-agent": USER_AGENT } });
}

/** Up to `limit` nodes of a connection, page after page (at most 100 per request). */
export async function fetchPages<N>(
  limit: number,
  fetchPage: (first: number, after: string | null) => Promise<{ edges: { node: N }[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } }>,
): Promise<N[]> {
  const rows: N[] = [];
  let after: string | null = null;
  while (rows.length < limit) {
    const page = await fetchPage(Math.min(100, limit - rows.length), after);
    rows.push(...page.edges.map((e) => e.node));
    if (!page.pageInfo.hasNextPage || !page.pageInfo.endCursor) break;
    after = page.pageInfo.endCursor;
  }
  return rows;
}
