/**
 * Text signatures of a boot's outcome, matched against OCR'd screens and firmware logs. OCR is
 * noisy: patterns tolerate extra/missing spaces and common letter confusions, and every match
 * returns the line it was found in, so the evidence says exactly what was read.
 */

export interface Signature {
  name: string;
  pattern: RegExp;
}

/** Screens that mean the system did not start. */
export const SCREEN_FAILURES: Signature[] = [
  { name: "No bootable device", pattern: /no\s*boot\s*able\s*device/i },
  { name: "Boot failed", pattern: /boot\s*failed/i },
  { name: "Kernel panic", pattern: /kernel\s*panic/i },
  { name: "Windows stop screen", pattern: /your\s*(pc|device)\s*ran\s*into\s*a\s*problem|stop\s*code|\*\*\*\s*STOP:|IRQL_NOT_LESS_OR_EQUAL|INACCESSIBLE_BOOT_DEVICE|CRITICAL_PROCESS_DIED|A problem has been detected and Windows has been shut down/i },
  { name: "Windows could not start", pattern: /windows\s*(failed|could\s*not)\s*(to\s*)?start|automatic\s*repair|BOOTMGR\s*is\s*missing|winload/i },
  { name: "GRUB rescue prompt", pattern: /grub\s*rescue\s*>|error:\s*(unknown\s*filesystem|no\s*such\s*partition)/i },
  { name: "Operating System not found", pattern: /operating\s*system\s*not\s*found|missing\s*operating\s*system|invalid\s*partition\s*table|error\s*loading\s*operating\s*system|non-system\s*disk/i },
  { name: "Emergency shell", pattern: /give\s*root\s*password\s*for\s*maintenance|you\s*are\s*in\s*emergency\s*mode|\(initramfs\)\s*$/im },
];

/** Screens that mean the system is up and waiting for a user. */
export const SCREEN_SUCCESSES: Signature[] = [
  { name: "Login prompt", pattern: /\blog\s*in\s*:|\busername\s*:|\bpassword\s*:/i },
  { name: "Windows sign-in screen", pattern: /press\s*ctrl\s*\+?\s*alt\s*\+?\s*(del|delete)|other\s*user|sign\s*in/i },
];

/** Firmware log lines that mean nothing could be booted. */
export const FIRMWARE_FAILURES: Signature[] = [
  { name: "No bootable device", pattern: /no\s*bootable\s*device/i },
  { name: "Boot failed", pattern: /boot\s*failed[^\n]*/i },
];

/** Firmware log line that says the firmware handed over to the disk (not proof of a boot). */
export const FIRMWARE_HANDOVER: Signature = { name: "Booting from the disk", pattern: /booting\s*from\s*hard\s*disk/i };

export interface SignatureMatch {
  name: string;
  /** The line the signature was found in (trimmed, at most 200 characters). */
  line: string;
}

export function matchSignatures(text: string, signatures: Signature[]): SignatureMatch[] {
  const lines = text.split(/\r?\n/);
  const out: SignatureMatch[] = [];
  for (const sig of signatures) {
    const line = lines.find((l) => sig.pattern.test(l)) ?? (sig.pattern.test(text) ? text : undefined);
    if (line !== undefined) out.push({ name: sig.name, line: clip(withoutKernelTimestamp(line)) });
  }
  return out;
}

/**
 * A kernel console line starts with its uptime, "[    1.415565] Kernel panic …", which OCR reads
 * whole, in part ("1.415565] …", or only the fraction: "415565] …") or with the bracket misread
 * ("{", "|", "("). The customer is told what the line says, so the stamp is dropped however much of
 * it was read. Only digits closed by a bracket count as a stamp, so "10.0.2.15 login:" stays.
 */
export function withoutKernelTimestamp(line: string): string {
  return line.replace(/^\s*[[({|l]?\s*(?:\d+\s*[.,:]\s*)?\d+\s*[\])}|]\s*/, "");
}

export function clip(s: string, max = 200): string {
  const t = s.replace(/\s+/g, " ").trim();
  return t.length > max ? `${t.slice(0, max - 1)}…` : t;
}
