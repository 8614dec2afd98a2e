import { describe, expect, it } from "vitest";
import {
  DEFAULT_SCHEDULE,
  decideBackup,
  describeSlot,
  isTimeZone,
  lastFullSlot,
  latestDueSlot,
  missedSince,
  nextSlot,
  parseHhMm,
  parseWeekday,
  previousSlot,
  zonedInstant,
  type ChainState,
  type Schedule,
} from "../../src/sources/source.service";

const berlin: Schedule = { fullEvery: 0, incrementalAt: "02:30", timezone: "Europe/Berlin", graceMinutes: 60 };
const at = (iso: string) => new Date(iso);
const iso = (d: Date) => d.toISOString();

describe("slots in a time zone (no process TZ involved)", () => {
  it("next and previous slot: today's when ahead, else tomorrow's; FULL on the full weekday of the zone", () => {
    const utc: Schedule = { ...DEFAULT_SCHEDULE, fullEvery: 3 }; // Wednesday
    // 2025-06-04 is a Wednesday.
    expect(nextSlot(at("2025-06-04T01:00:00Z"), utc)).toEqual({ at: at("2025-06-04T02:00:00Z"), full: true });
    expect(nextSlot(at("2025-06-04T02:00:00Z"), utc)).toEqual({ at: at("2025-06-05T02:00:00Z"), full: false }); // strictly after
    expect(previousSlot(at("2025-06-04T02:00:00Z"), utc)).toEqual({ at: at("2025-06-04T02:00:00Z"), full: true }); // at or before
    expect(previousSlot(at("2025-06-04T01:59:59Z"), utc).at).toEqual(at("2025-06-03T02:00:00Z"));
    // Year boundary.
    expect(iso(nextSlot(at("2025-12-31T23:00:00Z"), utc).at)).toBe("2026-01-01T02:00:00.000Z");
    // The weekday is the zone's, not UTC's: 23:30 in Tokyo on a Sunday is Sunday 14:30 UTC, but
    // 00:30 Monday in Tokyo is still Sunday in UTC.
    const tokyo: Schedule = { fullEvery: 1, incrementalAt: "00:30", timezone: "Asia/Tokyo", graceMinutes: 60 };
    expect(nextSlot(at("2025-06-08T12:00:00Z"), tokyo)).toEqual({ at: at("2025-06-08T15:30:00Z"), full: true }); // Mon 00:30 JST
    const la: Schedule = { fullEvery: 6, incrementalAt: "23:00", timezone: "America/Los_Angeles", graceMinutes: 60 };
    expect(nextSlot(at("2025-06-07T12:00:00Z"), la)).toEqual({ at: at("2025-06-08T06:00:00Z"), full: true }); // Sat 23:00 PDT
  });

  it("keeps the wall-clock time across DST: spring forward (gap) and fall back (ambiguous hour)", () => {
    // Berlin 2025-03-30: 02:00 CET → 03:00 CEST. The slot 02:30 does not exist that day: 03:30 CEST.
    const spring = nextSlot(at("2025-03-29T12:00:00Z"), berlin);
    expect(spring).toEqual({ at: at("2025-03-30T01:30:00Z"), full: true });
    expect(describeSlot(spring.at, "Europe/Berlin")).toBe("Sun 2025-03-30 03:30 Europe/Berlin");
    // The day before and after: 02:30 local, an hour apart in UTC.
    expect(iso(previousSlot(at("2025-03-29T12:00:00Z"), berlin).at)).toBe("2025-03-29T01:30:00.000Z"); // 02:30 CET
    expect(iso(nextSlot(spring.at, berlin).at)).toBe("2025-03-31T00:30:00.000Z"); // 02:30 CEST
    // 2025-10-26: 03:00 CEST → 02:00 CET; 02:30 happens twice: the first one.
    const fall = nextSlot(at("2025-10-25T12:00:00Z"), berlin);
    expect(iso(fall.at)).toBe("2025-10-26T00:30:00.000Z"); // 02:30 CEST
    expect(iso(nextSlot(fall.at, berlin).at)).toBe("2025-10-27T01:30:00.000Z"); // 02:30 CET, 25 h later
    // New York's change at 02:00 local: a 02:15 slot on 2025-03-09 → 03:15 EDT.
    const ny: Schedule = { fullEvery: 0, incrementalAt: "02:15", timezone: "America/New_York", graceMinutes: 60 };
    expect(nextSlot(at("2025-03-09T00:00:00Z"), ny)).toEqual({ at: at("2025-03-09T07:15:00Z"), full: true });
    expect(zonedInstant(2025, 11, 2, 1, 30, "America/New_York")).toBe(Date.parse("2025-11-02T05:30:00Z")); // first 01:30 (EDT)
  });

  it("the latest weekly FULL slot", () => {
    // Wednesday 2025-06-04 → the Sunday before, 02:30 CEST.
    expect(iso(lastFullSlot(at("2025-06-04T10:00:00Z"), berlin))).toBe("2025-06-01T00:30:00.000Z");
    // On Sunday before the slot → the previous Sunday; at the slot → that slot.
    expect(iso(lastFullSlot(at("2025-06-08T00:00:00Z"), berlin))).toBe("2025-06-01T00:30:00.000Z");
    expect(iso(lastFullSlot(at("2025-06-08T00:30:00Z"), berlin))).toBe("2025-06-08T00:30:00.000Z");
  });

  it("parses times, weekdays and zones strictly", () => {
    expect(parseHhMm("02:00")).toEqual([2, 0]);
    expect(parseHhMm("7:05")).toEqual([7, 5]);
    for (const bad of ["24:00", "2", "02:60", "two", "", "02:00:00"]) expect(parseHhMm(bad)).toBeNull();
    expect([parseWeekday("sun"), parseWeekday("SATURDAY"), parseWeekday("Mon")]).toEqual([0, 6, 1]);
    for (const bad of ["su", "funday", "", "sundays"]) expect(parseWeekday(bad)).toBeNull();
    expect([isTimeZone("Europe/Berlin"), isTimeZone("UTC"), isTimeZone("America/Argentina/Buenos_Aires")]).toEqual([true, true, true]);
    for (const bad of ["Mars/Olympus", "+01:00", "", "Europe/Berlin; DROP"]) expect(isTimeZone(bad)).toBe(false);
  });
});

describe("decideBackup: the one FULL/INCREMENTAL rule", () => {
  const full = (createdAt: string) => ({ id: "full-1", kind: "FULL" as const, createdAt: at(createdAt) });
  const intact = (latestAt: string, fullAt: string): ChainState => ({
    latestCompleted: { id: "latest", kind: "INCREMENTAL", createdAt: at(latestAt) },
    lastFullCreatedAt: at(fullAt),
    chainBroken: false,
  });

  it("FULL with nothing to build on, or a broken chain", () => {
    expect(decideBackup(at("2025-06-04T00:30:00Z"), berlin, { latestCompleted: null, lastFullCreatedAt: null, chainBroken: false })).toMatchObject({ kind: "FULL", reason: "NO_COMPLETED_BACKUP", parentBackupId: null });
    expect(decideBackup(at("2025-06-04T00:30:00Z"), berlin, { ...intact("2025-06-03T00:30:00Z", "2025-06-01T00:30:00Z"), chainBroken: true })).toMatchObject({ kind: "FULL", reason: "CHAIN_BROKEN" });
  });

  it("FULL at the weekly FULL slot, INCREMENTAL on the other slots of the week", () => {
    const state = intact("2025-06-07T00:30:05Z", "2025-06-01T00:30:10Z");
    const sunday = nextSlot(at("2025-06-07T12:00:00Z"), berlin).at; // 2025-06-08 02:30 CEST
    expect(decideBackup(sunday, berlin, state)).toEqual({ at: sunday, kind: "FULL", parentBackupId: null, reason: "FULL_SLOT" });
    const wednesday = at("2025-06-04T00:30:00Z");
    expect(decideBackup(wednesday, berlin, state)).toEqual({ at: wednesday, kind: "INCREMENTAL", parentBackupId: "latest", reason: "INCREMENTAL" });
  });

  it("FULL on every slot after a missed or failed FULL until one completes", () => {
    // The last COMPLETED FULL is from the week before: Monday's slot is a FULL too.
    const monday = at("2025-06-09T00:30:00Z");
    expect(decideBackup(monday, berlin, intact("2025-06-07T00:30:00Z", "2025-06-01T00:30:00Z"))).toMatchObject({ kind: "FULL", reason: "NO_FULL_SINCE_FULL_SLOT" });
    // The agent's clock a little ahead: a FULL started 30 s before the slot counts for it.
    expect(decideBackup(monday, berlin, { latestCompleted: full("2025-06-08T00:29:30Z"), lastFullCreatedAt: at("2025-06-08T00:29:30Z"), chainBroken: false })).toMatchObject({
      kind: "INCREMENTAL",
      parentBackupId: "full-1",
    });
  });

  it("the same rule in another zone: the FULL weekday is the zone's", () => {
    const tokyo: Schedule = { fullEvery: 1, incrementalAt: "00:30", timezone: "Asia/Tokyo", graceMinutes: 60 };
    // Sunday 2025-06-08 15:30 UTC is Monday 00:30 in Tokyo: the FULL slot.
    expect(decideBackup(at("2025-06-08T15:30:00Z"), tokyo, intact("2025-06-07T15:30:00Z", "2025-06-01T15:30:00Z"))).toMatchObject({ kind: "FULL", reason: "FULL_SLOT" });
    expect(decideBackup(at("2025-06-09T15:30:00Z"), tokyo, intact("2025-06-08T15:30:00Z", "2025-06-08T15:30:00Z"))).toMatchObject({ kind: "INCREMENTAL" });
  });
});

describe("missed slots", () => {
  const utc: Schedule = { ...DEFAULT_SCHEDULE, graceMinutes: 60 };
  const setAt = at("2025-06-01T00:00:00Z");

  it("a slot counts as missed only once its grace has passed with no backup started since", () => {
    // Slot 2025-06-04 02:00 UTC, backup the day before.
    const last = at("2025-06-03T02:00:03Z");
    expect(missedSince(at("2025-06-04T02:59:59Z"), utc, setAt, last)).toBeNull(); // within grace
    expect(missedSince(at("2025-06-04T03:00:00Z"), utc, setAt, last)).toEqual(at("2025-06-04T02:00:00Z"));
    // A backup started at the slot (or up to 10 min early) covers it.
    expect(missedSince(at("2025-06-04T05:00:00Z"), utc, setAt, at("2025-06-04T02:00:10Z"))).toBeNull();
    expect(missedSince(at("2025-06-04T05:00:00Z"), utc, setAt, at("2025-06-04T01:55:00Z"))).toBeNull();
    // Days of misses: missed since the first one; the detector reports the latest due slot.
    expect(missedSince(at("2025-06-06T12:00:00Z"), utc, setAt, last)).toEqual(at("2025-06-04T02:00:00Z"));
    expect(latestDueSlot(at("2025-06-06T12:00:00Z"), utc)).toEqual(at("2025-06-06T02:00:00Z"));
    expect(latestDueSlot(at("2025-06-06T02:30:00Z"), utc)).toEqual(at("2025-06-05T02:00:00Z")); // today's grace not over
  });

  it("a new source or a changed schedule is not judged on slots before it", () => {
    const created = at("2025-06-04T10:00:00Z");
    expect(missedSince(at("2025-06-04T12:00:00Z"), utc, created, null)).toBeNull();
    expect(missedSince(at("2025-06-05T02:59:00Z"), utc, created, null)).toBeNull();
    expect(missedSince(at("2025-06-05T03:00:00Z"), utc, created, null)).toEqual(at("2025-06-05T02:00:00Z"));
  });
});
