// Deterministic workflow code only: no Node built-ins, no I/O (eslint enforces it).
export { connectivityCheck } from "./connectivity";
export { backupMaintenance, detectMissedBackups, purgeSessions } from "./maintenance";
export { recoveryWorkflow, reconcileRecoveries, terminateStaleInstances } from "./recovery";
export { syncInstanceStates } from "./instances";
export { verifyBackupWorkflow } from "./verification";
export { drillWorkflow } from "./drill";
export { deliverNotification, sweepNotificationDeliveries, warnTerminatingInstances } from "./alerts";
