export * from "./users";
export * from "./sessions";
export * from "./backups";
export * from "./uploads";
export * from "./recoveries";
export * from "./instances";
export * from "./upload-chunks";
export * from "./retention-policies";
