import fs from "node:fs";
import { describe, expect, it } from "vitest";
import { eq } from "drizzle-orm";
import { PASSWORD, uniqueName } from "../helpers/stack";
import { AgentCheckInDocument, SourceDocument } from "../../src/client/generated/graphql";
import { backups } from "../../src/db/schema";
import { useConsole } from "../helpers/console-fixture";

/**
 * The console's Servers page in Chromium against an in-process API: each server's schedule, next
 * backup, last backup and when its agent was last seen; the schedule form saves a new schedule and
 * shows the server's reason when it refuses one — under the console's CSP, nothing leaving the machine.
 */


describe("console: Servers and their backup schedule (Chromium)", () => {
  const fixture = useConsole({ context: { timezoneId: "UTC", locale: "en-GB" }, ignoreConsole: /status of 400/ });

  it("shows each server's schedule, next and last backup and last seen; the form changes the schedule", async () => {
    const { stack, alice, page, problems } = fixture;
    const name = uniqueName("office");
    const b = await stack.rt.services.backups.create(alice.id, { sourceName: name, imageSize: 1 << 20, kind: "FULL" as never });
    await stack.rt.database.db.update(backups).set({ status: "COMPLETED", completedAt: new Date() }).where(eq(backups.id, b.id));
    await alice.client.request(AgentCheckInDocument, { input: { sourceName: name, host: "office.example", version: "0.1.0" } });

    const baseUrl = stack.app.graphqlUrl.replace(/\/graphql$/, "");
    await page.goto(`${baseUrl}/`);
    await page.getByLabel("E-mail address").fill(alice.email);
    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByRole("button", { name: "Log in" }).click();
    await page.getByRole("link", { name: "Servers" }).click();

    const card = page.locator(`[data-source="${name}"]`);
    await expect.poll(() => card.locator(".schedule").textContent()).toBe("Every day at 02:00 (UTC); full copy on Sundays");
    expect(await card.locator(".last-backup").textContent()).toMatch(/, full copy \(completed\)$/);
    expect(await card.locator(".last-seen").textContent()).toBe("just now on office.example");
    expect(await card.locator(".next-backup").textContent()).toMatch(/02:00, changes only$/);

    await card.getByText("Change the schedule").click();
    await card.getByLabel("Daily backup at").fill("03:15");
    await card.getByLabel("Full copy on").selectOption("WEDNESDAY");
    // A zone the server does not know: its reason is shown, nothing is saved.
    await card.getByLabel("Time zone").fill("Moon/Base");
    await card.getByRole("button", { name: "Save schedule" }).click();
    await expect.poll(() => card.getByRole("alert").textContent()).toContain("timezone must be an IANA time zone");
    expect((await alice.client.request(SourceDocument, { name })).source?.schedule.timezone).toBe("UTC");

    await card.getByLabel("Time zone").fill("Europe/Berlin");
    await card.getByLabel("Warn me when a backup is this many minutes late").fill("30");
    await card.getByRole("button", { name: "Save schedule" }).click();
    await expect.poll(() => card.locator(".schedule").textContent()).toBe("Every day at 03:15 (Europe/Berlin); full copy on Wednesdays");
    expect((await alice.client.request(SourceDocument, { name })).source?.schedule).toMatchObject({ fullEvery: "WEDNESDAY", incrementalAt: "03:15", timezone: "Europe/Berlin", graceMinutes: 30 });
    // 03:15 in Berlin is 01:15 or 02:15 UTC (the page shows UTC).
    expect(await card.locator(".next-backup").textContent()).toMatch(/0[12]:15, (full copy|changes only)$/);
    fs.mkdirSync("test-results/console", { recursive: true });
    await page.screenshot({ path: "test-results/console/servers.png", fullPage: true });
    expect(problems).toEqual([]);
  });
});
