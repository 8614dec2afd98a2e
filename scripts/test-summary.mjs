// Prints the plain "N passed, N failed" line CI reads, from vitest's JSON report.
import fs from "node:fs";

const file = process.argv[2];
let report;
try {
  report = JSON.parse(fs.readFileSync(file, "utf8"));
} catch {
  console.log("0 passed, 1 failed");
  console.error(`no vitest report at ${file}: the run did not finish`);
  process.exit(0);
}
const passed = report.numPassedTests ?? 0;
// A test file that failed without a failed test (it did not load, or a beforeAll/afterAll hook
// failed and its tests were never run) counts as a failure too.
const brokenFiles = (report.testResults ?? []).filter((f) => f.status === "failed" && !(f.assertionResults ?? []).some((t) => t.status === "failed")).length;
// Vitest's own exit status (passed by scripts/test.sh): a run whose tests all passed but that
// caught an error outside them (an uncaught exception, an unhandled rejection) exits non-zero, and
// the JSON report does not count it: count it here so the line says the run failed.
const exitCode = Number(process.argv[3] ?? 0);
const unhandled = exitCode !== 0 && (report.numFailedTests ?? 0) + brokenFiles === 0 ? 1 : 0;
if (unhandled) console.error(`vitest exited ${exitCode} although no test failed: see "Unhandled Errors" above`);
const failed = (report.numFailedTests ?? 0) + brokenFiles + unhandled;
const skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
