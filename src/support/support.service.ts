import { and, asc, eq, or } from "drizzle-orm";
import type { Db } from "../db/client";
import { recoveries, recoveryEvents, users, type RecoveryResources, type SupportGrantRow, type UserRow } from "../db/schema";
import { forbidden, noSupportGrant, notFound } from "../shared/errors";
import type { SupportGrantService } from "./grant.service";

/** Support staff: who may act for a customer (within that customer's grant). */
export const isStaff = (user: Pick<UserRow, "role">) => user.role === "SUPPORT" || user.role === "ADMIN";

/** A support session acting for a customer: whose account, under which grant. */
export interface Acting {
  customer: UserRow;
  grant: SupportGrantRow;
}

/** What support sees of any customer without a grant: the address and the account's status. */
export interface CustomerStatus {
  /** For the customer's audit log (not shown). */
  userId: string;
  email: string;
  verified: boolean;
  createdAt: Date;
  /** Until when the customer's live grant runs (null: none). */
  grantExpiresAt: Date | null;
  grantScope: SupportGrantRow["scope"] | null;
}

/** One step's attempts, as the recovery's timeline recorded them. */
export interface StepAttempts {
  step: string;
  attempts: number;
  retries: number;
  lastFailure: string | null;
  lastFailureAt: Date | null;
}

/** What support needs to answer "why did my recovery fail". */
export interface RecoveryDiagnosticsData {
  state: string;
  failureReason: string | null;
  resources: RecoveryResources;
  attempts: StepAttempts[];
  providerErrorCodes: string[];
  workflowId: string;
  runId: string | null;
  historyUrl: string;
}

/**
 * Provider error codes in a message: AWS-style codes (`InvalidAMIID.NotFound`, `UnauthorizedOperation`,
 * `ImportSnapshotTask.ClientError`), and upper-case codes (`TIMED_OUT`, `ECONNREFUSED`).
 */
const CODE_PATTERNS = [/\b[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)+(?:\.[A-Z][A-Za-z0-9]+)*\b/g, /\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b/g, /\bE[A-Z]{4,}\b/g];
export function providerErrorCodes(messages: (string | null | undefined)[]): string[] {
  const codes = new Set<string>();
  for (const m of messages) for (const re of CODE_PATTERNS) for (const match of (m ?? "").matchAll(re)) codes.add(match[0]);
  return [...codes];
}

export interface SupportServiceDeps {
  db: Db;
  grants: Pick<SupportGrantService, "liveGrantFor">;
  /** The Temporal run of a workflow (absent in processes without a workflow client). */
  runOf?: (workflowId: string) => Promise<{ runId: string } | null>;
  temporal: { namespace: string; uiUrl: string };
  now?: () => Date;
}

/** Support acting for customers (issue 17): who may, for whom, and what support reads about a recovery. */
export class SupportService {
  private readonly now: () => Date;
  constructor(private readonly deps: SupportServiceDeps) {
    this.now = deps.now ?? (() => new Date());
  }

  private async customerByIdOrEmail(idOrEmail: string): Promise<UserRow | null> {
    const key = idOrEmail.trim();
    const [row] = await this.deps.db
      .select()
      .from(users)
      .where(or(eq(users.id, key), eq(users.email, key.toLowerCase())))
      .limit(1);
    return row ?? null;
  }

  /**
   * `requester` asks to act for `idOrEmail`: FORBIDDEN unless SUPPORT or ADMIN; NO_SUPPORT_GRANT when
   * the account is unknown, is staff, or has no live grant (one answer: no oracle of who has an account).
   */
  async actFor(requester: UserRow, idOrEmail: string): Promise<Acting> {
    if (!isStaff(requester)) throw forbidden("Only support staff may act for a customer (X-ReClo-Act-For)");
    const customer = await this.customerByIdOrEmail(idOrEmail);
    if (!customer || customer.role !== "CUSTOMER" || customer.id === requester.id) throw noSupportGrant();
    const grant = await this.deps.grants.liveGrantFor(customer.id, this.now());
    if (!grant) throw noSupportGrant();
    return { customer, grant };
  }

  /** E-mail and account status of a customer, for support without a grant; NOT_FOUND for anyone else. */
  async customerStatus(requester: UserRow, email: string): Promise<CustomerStatus> {
    if (!isStaff(requester)) throw forbidden("Only support staff may look up a customer");
    const customer = await this.customerByIdOrEmail(email);
    if (!customer || customer.role !== "CUSTOMER" || customer.email !== email.trim().toLowerCase()) throw notFound("Customer", email);
    const grant = await this.deps.grants.liveGrantFor(customer.id, this.now());
    return { userId: customer.id, email: customer.email, verified: customer.emailVerifiedAt !== null, createdAt: customer.createdAt, grantExpiresAt: grant?.expiresAt ?? null, grantScope: grant?.scope ?? null };
  }

  /** The Temporal UI page of a run's history. */
  historyUrl(workflowId: string, runId: string | null): string {
    const base = this.deps.temporal.uiUrl.replace(/\/+$/, "");
    const ns = encodeURIComponent(this.deps.temporal.namespace);
    const wf = encodeURIComponent(workflowId);
    return runId ? `${base}/namespaces/${ns}/workflows/${wf}/${encodeURIComponent(runId)}/history` : `${base}/namespaces/${ns}/workflows/${wf}`;
  }

  /** Diagnostics of the owner's recovery (NOT_FOUND for anyone else's). */
  async recoveryDiagnostics(userId: string, recoveryId: string): Promise<RecoveryDiagnosticsData> {
    const [row] = await this.deps.db
      .select()
      .from(recoveries)
      .where(and(eq(recoveries.id, recoveryId), eq(recoveries.userId, userId)))
      .limit(1);
    if (!row) throw notFound("Recovery", recoveryId);
    const events = await this.deps.db
      .select()
      .from(recoveryEvents)
      .where(and(eq(recoveryEvents.recoveryId, recoveryId), eq(recoveryEvents.userId, userId)))
      .orderBy(asc(recoveryEvents.id));
    const steps = new Map<string, StepAttempts>();
    for (const e of events) {
      const s = steps.get(e.step) ?? { step: e.step, attempts: 0, retries: 0, lastFailure: null, lastFailureAt: null };
      s.attempts = Math.max(s.attempts, e.attempt);
      if (e.status === "RETRYING") s.retries++;
      if (e.status === "FAILED" || e.status === "RETRYING") {
        s.lastFailure = e.message;
        s.lastFailureAt = e.createdAt;
      }
      steps.set(e.step, s);
    }
    const failures = events.filter((e) => e.status === "FAILED" || e.status === "RETRYING").map((e) => e.message);
    const run = this.deps.runOf ? await this.deps.runOf(row.workflowId).catch(() => null) : null;
    const runId = run?.runId ?? null;
    return {
      state: row.state,
      failureReason: row.failureReason,
      resources: row.resources ?? {},
      attempts: [...steps.values()],
      providerErrorCodes: providerErrorCodes([row.failureReason, ...failures]),
      workflowId: row.workflowId,
      runId,
      historyUrl: this.historyUrl(row.workflowId, runId),
    };
  }
}
