/** Words and numbers as people read them. */
import type { BackupKind, InstanceState, RecoveryState, RecoveryTarget } from "./generated/graphql";

export function formatBytes(n: number): string {
  if (n >= 1e12) return `${(n / 1e12).toFixed(1)} TB`;
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)} GB`;
  if (n >= 1e6) return `${Math.round(n / 1e6)} MB`;
  if (n >= 1e3) return `${Math.round(n / 1e3)} KB`;
  return `${n} bytes`;
}

const dateTime = new Intl.DateTimeFormat(undefined, { weekday: "short", day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit" });
const timeOnly = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });

export function formatDate(iso: string | null | undefined): string {
  return iso ? dateTime.format(new Date(iso)) : "—";
}

export function formatTime(iso: string): string {
  return timeOnly.format(new Date(iso));
}

/** "3 hours ago", "yesterday", … (falls back to nothing when Intl.RelativeTimeFormat is missing). */
export function formatAgo(iso: string): string {
  const seconds = (Date.now() - Date.parse(iso)) / 1000;
  if (typeof Intl.RelativeTimeFormat !== "function") return "";
  const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
  if (seconds < 60) return "just now";
  if (seconds < 3600) return rtf.format(-Math.round(seconds / 60), "minute");
  if (seconds < 86400) return rtf.format(-Math.round(seconds / 3600), "hour");
  return rtf.format(-Math.round(seconds / 86400), "day");
}

export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (h > 0) return `${h} h ${m} min`;
  if (m > 0) return `${m} min ${sec} s`;
  return `${sec} s`;
}

export const STEPS = [
  { state: "PREPARING", title: "Getting the backup ready" },
  { state: "IMPORTING", title: "Building the machine's disk" },
  { state: "LAUNCHING", title: "Starting the machine" },
  { state: "CHECKING", title: "Checking it started" },
  { state: "COMPLETED", title: "Done" },
] as const satisfies readonly { state: RecoveryState; title: string }[];

/** The states of a recovery still under way (it can be cancelled, progress is live). */
export const ACTIVE_STATES: readonly RecoveryState[] = ["PENDING", "PREPARING", "IMPORTING", "LAUNCHING", "CHECKING"];
export const isActive = (s: RecoveryState) => ACTIVE_STATES.includes(s);

export function stateLabel(state: RecoveryState): string {
  switch (state) {
    case "PENDING":
      return "Waiting to start";
    case "PREPARING":
      return "Getting the backup ready";
    case "IMPORTING":
      return "Building the machine's disk";
    case "LAUNCHING":
      return "Starting the machine";
    case "CHECKING":
      return "Checking it started";
    case "COMPLETED":
      return "Finished: the machine is up";
    case "FAILED":
      return "Failed";
    case "CANCELLED":
      return "Cancelled";
  }
}

export function instanceStateLabel(state: InstanceState): string {
  switch (state) {
    case "PENDING":
      return "Starting up";
    case "RUNNING":
      return "Running";
    case "STOPPING":
      return "Shutting down";
    case "STOPPED":
      return "Stopped";
    case "TERMINATED":
      return "Deleted";
    case "LOST":
      return "Missing";
  }
}

export function targetLabel(target: RecoveryTarget): string {
  return target === "AWS" ? "Amazon cloud (AWS)" : "Local recovery host";
}

export function kindLabel(kind: BackupKind): string {
  return kind === "FULL" ? "Full backup" : "Changes since the previous backup";
}

/** A symbol, so states never rely on colour alone. */
export function stateIcon(state: RecoveryState | InstanceState): string {
  switch (state) {
    case "COMPLETED":
    case "RUNNING":
      return "✓";
    case "FAILED":
    case "LOST":
      return "✗";
    case "CANCELLED":
    case "TERMINATED":
      return "–";
    case "STOPPED":
      return "■";
    default:
      return "…";
  }
}
