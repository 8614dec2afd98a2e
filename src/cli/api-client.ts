import { ReCloClient, type RetryPolicy } from "../client/graphql-client";
import type { Settings } from "./config-file";
import { notLoggedIn } from "./errors";

/** The API clients a command uses (with the CLI's user agent), and paging through connections. */

const USER_AGENT = "reclo-cli/0.1";

/**
 * Every call is retried while the server answers UNAVAILABLE (one of its dependencies is down) or
 * cannot be reached, for `settings.retryBudgetMs` (RECLO_RETRY_SECONDS); `onRetry` hears each wait.
 */
function retryPolicy(settings: Settings, onRetry: RetryPolicy["onRetry"] = tellRetry): RetryPolicy {
  return { budgetMs: settings.retryBudgetMs ?? 0, onRetry };
}

/** By default each wait is one line on stderr, so a command that waits says why. */
function tellRetry({ delayMs, reason }: { delayMs: number; reason: string }): void {
  process.stderr.write(`reclo: ${reason}; retrying in ${(delayMs / 1000).toFixed(1)} s\n`);
}

export function anonymousClient(settings: Settings, onRetry?: RetryPolicy["onRetry"]): ReCloClient {
  return new ReCloClient({ url: settings.url, headers: { "user-agent": USER_AGENT }, retry: retryPolicy(settings, onRetry) });
}

export function authedClient(settings: Settings, onRetry?: RetryPolicy["onRetry"]): ReCloClient {
  if (!settings.token) throw notLoggedIn();
  return new ReCloClient({ url: settings.url, token: settings.token, headers: { "user-agent": USER_AGENT }, retry: retryPolicy(settings, onRetry) });
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
