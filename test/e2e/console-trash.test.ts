import { describe, expect, it } from "vitest";
import { BackupRestorableDocument, TrashDocument } from "../../src/client/generated/graphql";
import { backupImage, makeImage, MiB } from "../helpers/backup";
import { uniqueName, PASSWORD } from "../helpers/stack";
import { useConsole } from "../helpers/console-fixture";

/**
 * Deletion defense in the console (issue 18), Chromium against an in-process API: deleting a
 * restore point on a session that has not re-entered its password opens the password dialog (a
 * wrong password stays in it, and keeps the session), then the deletion is retried: the page says
 * it went to the trash, until when, and links the Trash page, which lists it with Restore.
 */
describe("console: delete to the trash, password dialog, restore (Chromium)", () => {
  const fixture = useConsole();

  it("Delete → password dialog → in the trash (with the date and a link) → Trash page → Restore", async () => {
    const { stack, alice, page, problems } = fixture;
    const sourceName = uniqueName("fileserver");
    const { backup } = await backupImage(stack, alice.id, makeImage(2 * MiB, 8 * MiB), { sourceName });

    const baseUrl = stack.app.graphqlUrl.replace(/\/graphql$/, "");
    await page.goto(`${baseUrl}/`);
    await page.getByLabel("E-mail address").fill(alice.email);
    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByRole("button", { name: "Log in" }).click();
    const card = page.locator(`[data-backup-id="${backup.id}"]`);
    await card.getByRole("button", { name: "Delete…" }).click();
    const confirm = page.getByRole("dialog", { name: `Delete the restore point of ${sourceName}?` });
    expect(await confirm.textContent()).toContain("goes to the trash");
    await confirm.getByRole("button", { name: "Delete", exact: true }).click();

    // The login session has not re-entered its password: the API answers REAUTH_REQUIRED, the console asks.
    const reauth = page.getByRole("dialog", { name: "Enter your password again" });
    await reauth.getByLabel("Password").fill("not my password");
    await reauth.getByRole("button", { name: "Confirm" }).click();
    await expect.poll(() => reauth.getByRole("alert").textContent()).toBe("That password is not right. Please try again.");
    expect((await alice.client.request(TrashDocument, {})).trash).toEqual([]);

    await reauth.getByLabel("Password").fill(PASSWORD);
    await reauth.getByRole("button", { name: "Confirm" }).click();
    const notice = page.locator(".deleted-to-trash");
    await expect.poll(() => notice.count()).toBe(1);
    expect(await reauth.count()).toBe(0);
    const [item] = (await alice.client.request(TrashDocument, {})).trash;
    expect(item).toMatchObject({ id: backup.id, kind: "BACKUP" });
    const effective = new Date(item!.effectiveAt).toISOString();
    const text = (await notice.textContent())!;
    expect(text).toContain(`The restore point of ${sourceName} went to the trash. It will be deleted on `);
    // The date as the console writes dates (src/console/client/format.ts), in the browser's locale and zone.
    const shown = await page.evaluate(
      (iso) => new Intl.DateTimeFormat(undefined, { weekday: "short", day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit" }).format(new Date(iso)),
      effective,
    );
    expect(text).toContain(`It will be deleted on ${shown}; until then you can undo this on the Trash page.`);
    expect(await card.locator(".trash-note").textContent()).toMatch(/^In the trash: it will be deleted on /);
    expect(await card.getByRole("button", { name: "Delete…" }).count()).toBe(0);

    await notice.getByRole("link", { name: "Trash page" }).click();
    await expect.poll(() => page.getByRole("heading", { level: 1 }).textContent()).toBe("Trash");
    expect(await page.getByRole("navigation").getByRole("link", { name: "Trash" }).getAttribute("aria-current")).toBe("page");
    const row = page.locator(`[data-trash-id="${backup.id}"]`);
    await expect.poll(() => row.count()).toBe(1);
    expect(await row.locator(".trash-kind").textContent()).toBe("Restore point");
    expect(await row.locator(".trash-what").textContent()).toBe(item!.what);
    expect(await row.textContent()).toContain(alice.username);

    await row.getByRole("button", { name: /^Restore/ }).click();
    await expect.poll(() => page.locator(".trash-restored").count()).toBe(1);
    expect(await row.count()).toBe(0);
    expect(await page.locator(".empty-trash").textContent()).toBe("The trash is empty.");
    expect((await alice.client.request(TrashDocument, {})).trash).toEqual([]);
    expect((await alice.client.request(BackupRestorableDocument, { id: backup.id })).backup).toEqual({ id: backup.id, status: "COMPLETED", restorable: true });

    // Back on the restore points, it can be deleted again (and the fresh password still counts: no dialog).
    await page.getByRole("navigation").getByRole("link", { name: "Restore points" }).click();
    await card.getByRole("button", { name: "Delete…" }).click();
    await page.getByRole("dialog", { name: `Delete the restore point of ${sourceName}?` }).getByRole("button", { name: "Delete", exact: true }).click();
    await expect.poll(() => notice.count()).toBe(1);
    expect(await reauth.count()).toBe(0);
    expect((await alice.client.request(TrashDocument, {})).trash.map((i) => i.id)).toEqual([backup.id]);
    expect(problems).toEqual([]);
  });
});
