import type { ComputeTarget, ConsoleScreenshot, InstanceProviderState } from "../compute/target";

/**
 * Kinds of boot evidence:
 *   FIRMWARE  the firmware's own log (SeaBIOS debug console): "No bootable device", "Boot failed" are failures;
 *   SCREEN    OCR of screenshots: failure signatures (kernel panic, stop screens, …), success (a login prompt, …);
 *   SERVICE   a banner or protocol reply read on a declared TCP port (a bare connect proves nothing);
 *   MARKER    the configured text on the serial console;
 *   MACHINE   the machine's own state (it powered off or crashed during boot; provider status checks).
 * Only SERVICE, SCREEN and MARKER can prove a boot (see `POSITIVE_KINDS`).
 */
export type EvidenceKind = "FIRMWARE" | "SCREEN" | "SERVICE" | "MARKER" | "MACHINE";
export const POSITIVE_KINDS: readonly EvidenceKind[] = ["SERVICE", "SCREEN", "MARKER"];

export interface Evidence {
  kind: EvidenceKind;
  /** The check passed (a prompt was read, a banner answered). */
  ok: boolean;
  /** A failure signature: this alone makes the verdict FAILED. */
  failure: boolean;
  /** What was seen, in words, to follow the kind's name ("Screen: shows login prompt: …"). */
  detail: string;
  /** When it was seen (ISO 8601). */
  at: string;
}

export type BootVerdict = "VERIFIED" | "FAILED" | "INCONCLUSIVE";

/** A forwarded TCP port of the machine: where to probe guest port `guestPort` from here. */
export interface ServiceEndpoint {
  guestPort: number;
  host: string;
  port: number;
}

/**
 * What the collector needs from a running machine. `probeFor` wraps a ComputeTarget + instance id;
 * tests or other targets may implement it directly. Optional parts a target cannot give are skipped.
 */
export interface BootProbe {
  state(): Promise<InstanceProviderState>;
  /** The screen, in the provider's format (PNG locally, JPEG on EC2). */
  screenshot?(): Promise<ConsoleScreenshot>;
  /** Serial console text (tail). */
  consoleOutput?(): Promise<string>;
  /** Firmware debug log (tail). */
  firmwareLog?(): Promise<string>;
  /** Where the declared ports can be reached from this process. */
  serviceEndpoints?(ports: number[]): Promise<ServiceEndpoint[]>;
}

export interface BootEvidenceOptions {
  /** When the machine was started (epoch ms): bootSeconds counts from here. */
  launchedAtMs: number;
  /** Nothing decisive seen by launchedAtMs + timeoutMs: INCONCLUSIVE. */
  timeoutMs: number;
  pollIntervalMs: number;
  /** Guest TCP ports whose banner/reply proves a service (e.g. [22, 3389]). */
  ports: number[];
  /** Serial console text that proves the boot. */
  bootMarker?: string;
  /**
   * After the first decisive signal, how long to keep collecting corroborating evidence (the other
   * ports, the screen) before deciding. The verdict is returned earlier when nothing is left to learn.
   */
  graceMs?: number;
  /** tesseract binary (default "tesseract"). */
  tesseract?: string;
  signal?: AbortSignal;
  /** Called once per new piece of evidence, in order. */
  onEvidence?: (e: Evidence) => void | Promise<void>;
  /** Called on every poll (e.g. an activity heartbeat). */
  onPoll?: () => void;
  now?: () => number;
}

export interface BootEvidenceResult {
  verdict: BootVerdict;
  evidence: Evidence[];
  /** Seconds from launch to the first positive signal (only when VERIFIED). */
  bootSeconds?: number;
  /** The failure evidence in words (FAILED) or what was missing (INCONCLUSIVE). */
  reason?: string;
  /** Text read from the last screenshot. */
  screenText?: string;
  /** The last screenshot, as the probe gave it. */
  screenshot?: ConsoleScreenshot;
}

/** `launchedAtMs`: the launch's own time, so an eventually consistent provider's "not found" right after it reads as "pending". */
export function probeFor(target: ComputeTarget, instanceId: string, launchedAtMs?: number): BootProbe {
  return {
    state: async () => (await target.describeInstance(instanceId, { launchedAtMs })).state,
    screenshot: () => target.screenshot(instanceId),
    consoleOutput: () => target.consoleOutput(instanceId),
    firmwareLog: target.firmwareLog ? () => target.firmwareLog!(instanceId) : undefined,
    serviceEndpoints: target.serviceEndpoints ? (ports) => target.serviceEndpoints!(instanceId, ports) : undefined,
  };
}
