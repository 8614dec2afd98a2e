import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { isPrivateAddress, isRetryable, parseWebhookUrl, signWebhook, verifyWebhookSignature, WebhookAddressError } from "../../src/alerts/webhook-http";
import { emailOf, consoleLink } from "../../src/alerts/alerts.activities";
import { DEFAULT_EMAIL_KINDS } from "../../src/alerts/notification.service";

describe("webhook signatures, retry rules and URL form", () => {
  it("signs HMAC-SHA256 over `${timestamp}.${raw body}` with the secret, as the README tells receivers", () => {
    const body = '{"id":"n1","kind":"BACKUP_MISSED"}';
    const expected = `sha256=${createHmac("sha256", "whsec_test").update(`1700000000.${body}`).digest("hex")}`;
    expect(signWebhook("whsec_test", 1700000000, body)).toBe(expected);
    expect(verifyWebhookSignature("whsec_test", "1700000000", body, expected)).toBe(true);
    // Another timestamp, body or secret does not verify (a replay with a fresh timestamp fails).
    expect(verifyWebhookSignature("whsec_test", "1700000001", body, expected)).toBe(false);
    expect(verifyWebhookSignature("whsec_test", "1700000000", `${body} `, expected)).toBe(false);
    expect(verifyWebhookSignature("whsec_other", "1700000000", body, expected)).toBe(false);
    expect(verifyWebhookSignature("whsec_test", "1700000000", body, "sha256=00")).toBe(false);
  });

  it("retries 5xx, 408, 429 and no answer; not 4xx, 3xx or a refused address", () => {
    for (const httpStatus of [500, 502, 503, 504, 408, 429, null]) expect(isRetryable({ httpStatus, refused: false }), String(httpStatus)).toBe(true);
    for (const httpStatus of [400, 401, 403, 404, 410, 422, 301, 302]) expect(isRetryable({ httpStatus, refused: false }), String(httpStatus)).toBe(false);
    expect(isRetryable({ httpStatus: null, refused: true })).toBe(false);
  });

  it("takes http(s) URLs without credentials; the fragment is dropped", () => {
    expect(parseWebhookUrl(" https://hooks.example.com/reclo?x=1#frag ").href).toBe("https://hooks.example.com/reclo?x=1");
    for (const [url, reason] of [
      ["javascript:alert(1)", "SCHEME"],
      ["gopher://example.com/", "SCHEME"],
      ["http://u@example.com/", "CREDENTIALS"],
      ["http://", "MALFORMED"],
      [`https://example.com/${"a".repeat(2100)}`, "MALFORMED"],
    ] as const) {
      const err = (() => {
        try {
          parseWebhookUrl(url);
        } catch (e) {
          return e;
        }
      })();
      expect(err, url).toBeInstanceOf(WebhookAddressError);
      expect((err as WebhookAddressError).reason, url).toBe(reason);
    }
  });

  it("knows the non-public ranges, in IPv4-mapped and NAT64 disguise too", () => {
    for (const a of ["::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe", "100.64.0.1", "198.18.0.1", "255.255.255.255"]) expect(isPrivateAddress(a), a).toBe(true);
    for (const a of ["93.184.215.14", "::ffff:93.184.215.14", "2a00:1450:4001:80b::200e"]) expect(isPrivateAddress(a), a).toBe(false);
  });
});

describe("notification e-mail", () => {
  it("has the title as subject, the body, and the console link of the notification", () => {
    const n = { id: "01a2-id", userId: "u", kind: "VERIFICATION_FAILED" as const, title: "A restore point failed", body: "It did not boot.", subjectType: null, subjectId: null, dedupeKey: "k", createdAt: new Date(), readAt: null, deliveryStartedAt: null };
    const mail = emailOf(n, "https://reclo.example.com");
    expect(mail.subject).toBe("[ReClo] A restore point failed");
    expect(mail.text).toContain("It did not boot.");
    expect(mail.text).toContain(consoleLink("https://reclo.example.com", n));
    expect(consoleLink("https://reclo.example.com", n)).toBe("https://reclo.example.com/#/notifications?id=01a2-id");
    expect(mail.text).toContain("https://reclo.example.com/#/settings/notifications");
  });

  it("e-mails every kind but RECOVERY_COMPLETED by default", () => {
    expect(DEFAULT_EMAIL_KINDS).toEqual(["BACKUP_MISSED", "UPLOAD_FAILED", "UPLOAD_ABANDONED", "VERIFICATION_FAILED", "RECOVERY_FAILED", "INSTANCE_TERMINATING", "ENCRYPTION_SUSPECTED", "DELETION_REQUESTED"]);
  });
});
