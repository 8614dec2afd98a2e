import { waitFor } from "./wait";

/**
 * The local mailpit's inbox, through its HTTP API (started by scripts/services.sh; MAILPIT_URL).
 * Tests give every user an address of their own, so they never see each other's mail.
 */
export const MAILPIT_URL = (process.env.MAILPIT_URL ?? "http://127.0.0.1:8025").replace(/\/+$/, "");

export interface MailSummary {
  ID: string;
  Subject: string;
  To: { Address: string; Name: string }[];
  From: { Address: string; Name: string };
  Created: string;
  Snippet: string;
}

export interface Mail extends MailSummary {
  Text: string;
  HTML: string;
}

async function api<T>(path: string, init?: RequestInit): Promise<T> {
  const res = await fetch(`${MAILPIT_URL}/api/v1${path}`, init);
  const body = await res.text();
  if (!res.ok) throw new Error(`mailpit ${init?.method ?? "GET"} ${path}: HTTP ${res.status} ${body.slice(0, 200)}`);
  return (body ? JSON.parse(body) : undefined) as T;
}

/** Every message to `address`, newest first. */
export async function mailsTo(address: string): Promise<MailSummary[]> {
  const r = await api<{ messages: MailSummary[] }>(`/search?query=${encodeURIComponent(`to:"${address}"`)}&limit=200`);
  return r.messages.filter((m) => m.To.some((t) => t.Address.toLowerCase() === address.toLowerCase()));
}

/** One message in full (text and HTML bodies). */
export function readMail(id: string): Promise<Mail> {
  return api<Mail>(`/message/${encodeURIComponent(id)}`);
}

/** Waits for a message to `address` whose subject matches, and reads it. */
export async function waitForMail(address: string, subject: RegExp = /./, timeoutMs = 30_000): Promise<Mail> {
  const found = await waitFor(`an e-mail to ${address} with a subject matching ${subject}`, async () => (await mailsTo(address)).find((m) => subject.test(m.Subject)), timeoutMs, 250);
  return readMail(found.ID);
}

/** The http(s) links in a message's text, in order. */
export function linksIn(mail: Pick<Mail, "Text">): string[] {
  return [...mail.Text.matchAll(/https?:\/\/[^\s<>"')]+/g)].map((m) => m[0]);
}

/** Deletes the messages to `address` (a test that counts mails starts from none). */
export async function clearMailsTo(address: string): Promise<void> {
  await api(`/search?query=${encodeURIComponent(`to:"${address}"`)}`, { method: "DELETE" });
}
