import type { DrillActivities } from "../../workflows/contracts";
import type { DrillService } from "./drill.service";

export interface DrillActivityDeps {
  drills: Pick<DrillService, "begin" | "finish">;
}

/** The drill workflow's activities: record the drill and its outcome (the boot itself is the verification's). */
export function createDrillActivities(deps: DrillActivityDeps): DrillActivities {
  return {
    beginDrill: (input) => deps.drills.begin(input),
    finishDrill: (input) => deps.drills.finish(input),
  };
}
