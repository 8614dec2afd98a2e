import { createCipheriv, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { BackupDocument } from "../../src/client/generated/graphql";
import { backupImage } from "../helpers/backup";
import { uniqueName, PASSWORD } from "../helpers/stack";
import { useConsole } from "../helpers/console-fixture";

const CHUNK = 8 * 1024 * 1024;
const TEXT = Buffer.from("Minutes of the weekly meeting: orders, invoices and the holiday rota for December.\n");

/** Five chunks of office text (low entropy), unique per chunk. */
function officeImage(): Buffer {
  const img = Buffer.alloc(5 * CHUNK);
  for (let off = 0; off < img.length; off += TEXT.length) TEXT.copy(img, off);
  for (let i = 0; i < 5; i++) img.write(`chunk ${i} ${randomBytes(8).toString("hex")}\n`, i * CHUNK);
  return img;
}

/**
 * The encryption alarm in the console's restore points (issue 18), Chromium against an in-process
 * API: the suspect restore point carries a warning badge with what was seen, the one before it is
 * marked "Last clean", and answering "It was a legitimate change" (with the password re-entered: SAFE
 * lifts retention's hold) clears the alarm (API: SAFE).
 */
describe("console: the encryption alarm on restore points (Chromium)", () => {
  const fixture = useConsole();

  it("marks the suspect restore point and the last clean one; 'It was a legitimate change' resolves it as SAFE", async () => {
    const { stack, alice, page, problems } = fixture;
    const sourceName = uniqueName("office");
    const clean = officeImage();
    const full = await backupImage(stack, alice.id, clean, { sourceName });
    const encrypted = Buffer.from(clean);
    createCipheriv("aes-256-ctr", randomBytes(32), randomBytes(16)).update(clean.subarray(0, 4 * CHUNK)).copy(encrypted, 0);
    const { backup: suspect } = await backupImage(stack, alice.id, encrypted, { sourceName, kind: "INCREMENTAL", parentBackupId: full.backup.id });
    expect(suspect.suspect).toMatchObject({ changedPercent: 80 });

    const baseUrl = stack.app.graphqlUrl.replace(/\/graphql$/, "");
    await page.goto(`${baseUrl}/`);
    await page.getByLabel("E-mail address").fill(alice.email);
    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByRole("button", { name: "Log in" }).click();
    const suspectCard = page.locator(`[data-backup-id="${suspect.id}"]`);
    await expect.poll(() => suspectCard.locator('[data-alarm="suspect"]').textContent()).toBe("⚠ Suspect: possible ransomware");
    expect(await suspectCard.getByRole("alert").textContent()).toContain("80 % of the disk changed in this backup");
    expect(await page.locator(`[data-backup-id="${full.backup.id}"] [data-alarm="last-clean"]`).textContent()).toBe("Last clean");

    // SAFE lifts retention's hold: the console asks for the password (fresh authentication) first.
    await suspectCard.getByRole("button", { name: "It was a legitimate change" }).click();
    await suspectCard.getByLabel("Your password").fill(PASSWORD);
    await suspectCard.getByRole("button", { name: "Confirm: legitimate change" }).click();
    await expect.poll(async () => (await alice.client.request(BackupDocument, { id: suspect.id })).backup.suspect?.verdict).toBe("SAFE");
    await expect.poll(() => page.locator("[data-alarm]").count()).toBe(0);
    expect(await suspectCard.getByRole("alert").count()).toBe(0);
    expect(problems).toEqual([]);
  });
});
