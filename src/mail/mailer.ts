import nodemailer from "nodemailer";
import type { Transporter } from "nodemailer";

/**
 * The outgoing-mail port: alerts, address verification and password resets go through it. One
 * adapter speaks SMTP (the local mailpit in development and tests, a relay in production); tests of
 * single services may pass their own.
 */
export interface MailMessage {
  to: string;
  subject: string;
  /** Plain text, always sent (links written out in full). */
  text: string;
  /** Optional HTML alternative. */
  html?: string;
  /** Extra headers, e.g. `X-ReClo-Notification`. */
  headers?: Record<string, string>;
}

export interface Mailer {
  /** Resolves once the relay accepted the message; rejects with a MailError otherwise. */
  send(message: MailMessage): Promise<{ messageId: string }>;
  close(): Promise<void>;
}

/** A send the relay refused or never answered; `permanent` when retrying cannot help (5xx). */
export class MailError extends Error {
  constructor(
    message: string,
    readonly permanent: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "MailError";
  }
}

export interface SmtpMailerOptions {
  /** smtp://[user:pass@]host:port or smtps://… */
  url: string;
  from: string;
  timeoutMs: number;
}

/** Where a URL points, without its credentials (for logs and errors). */
export function describeSmtpUrl(url: string): string {
  const u = new URL(url);
  return `${u.protocol}//${u.host}`;
}

export class SmtpMailer implements Mailer {
  private readonly transport: Transporter;

  constructor(private readonly opts: SmtpMailerOptions) {
    const u = new URL(opts.url);
    this.transport = nodemailer.createTransport({
      host: u.hostname.replace(/^\[|\]$/g, ""),
      port: Number(u.port || (u.protocol === "smtps:" ? 465 : 25)),
      secure: u.protocol === "smtps:",
      ...(u.username ? { auth: { user: decodeURIComponent(u.username), pass: decodeURIComponent(u.password) } } : {}),
      connectionTimeout: opts.timeoutMs,
      greetingTimeout: opts.timeoutMs,
      socketTimeout: opts.timeoutMs,
      // A local relay (mailpit) offers no TLS; a remote one must, when it advertises STARTTLS.
      ignoreTLS: ["127.0.0.1", "localhost", "::1"].includes(u.hostname.replace(/^\[|\]$/g, "")),
    });
  }

  async send(m: MailMessage): Promise<{ messageId: string }> {
    try {
      const info = await this.transport.sendMail({ from: this.opts.from, to: m.to, subject: m.subject, text: m.text, html: m.html, headers: m.headers });
      return { messageId: info.messageId };
    } catch (err) {
      const e = err as { responseCode?: number; code?: string; message?: string };
      const permanent = typeof e.responseCode === "number" && e.responseCode >= 500;
      throw new MailError(`mail to the relay at ${describeSmtpUrl(this.opts.url)} failed: ${e.responseCode ? `${e.responseCode} ` : ""}${e.message ?? String(err)}`, permanent, { cause: err });
    }
  }

  async close(): Promise<void> {
    this.transport.close();
  }
}
