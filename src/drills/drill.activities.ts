import type { DrillService } from "./drill.service";

export interface DrillActivityDeps {
  drills: DrillService;
}

/** The drill workflow's activities: record the drill and its outcome (the boot itself is the verification's). */
export function createDrillActivities(deps: DrillActivityDeps) {
  return {
    beginDrill: (input: Parameters<DrillService["begin"]>[0]) => deps.drills.begin(input),
    finishDrill: (input: Parameters<DrillService["finish"]>[0]) => deps.drills.finish(input),
  };
}

export type DrillActivities = ReturnType<typeof createDrillActivities>;
