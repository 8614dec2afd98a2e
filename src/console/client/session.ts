/**
 * The session token. It lives in memory and in this tab's sessionStorage (so a reload keeps you
 * logged in, closing the tab forgets it, other tabs never see it). It is never put in a URL,
 * a cookie or a log: it only leaves as the Authorization header and the graphql-ws
 * connectionParams. The page's CSP (script-src 'self', no inline script) keeps foreign scripts
 * from reading it.
 */

export interface Session {
  token: string;
  expiresAt: string;
  email: string;
  username: string;
}

const KEY = "reclo.console.session";
let current: Session | undefined = load();

function load(): Session | undefined {
  try {
    const raw = window.sessionStorage.getItem(KEY);
    if (!raw) return undefined;
    const parsed = JSON.parse(raw) as Partial<Session>;
    if (typeof parsed.token !== "string" || typeof parsed.expiresAt !== "string") return undefined;
    if (Date.parse(parsed.expiresAt) <= Date.now()) {
      window.sessionStorage.removeItem(KEY);
      return undefined;
    }
    return { token: parsed.token, expiresAt: parsed.expiresAt, email: parsed.email ?? "", username: parsed.username ?? "" };
  } catch {
    return undefined; // storage disabled or corrupt: memory only
  }
}

export function getSession(): Session | undefined {
  if (current && Date.parse(current.expiresAt) <= Date.now()) clearSession();
  return current;
}

export function setSession(session: Session): void {
  current = session;
  try {
    window.sessionStorage.setItem(KEY, JSON.stringify(session));
  } catch {
    // storage disabled: the session lasts until the page is reloaded
  }
}

export function clearSession(): void {
  current = undefined;
  try {
    window.sessionStorage.removeItem(KEY);
  } catch {
    // nothing stored
  }
}
