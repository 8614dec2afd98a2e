import { loadConfig } from "../config";
import { createDatabase } from "./client";
import { ensureDatabaseExists, runMigrations } from "./migrate";

async function main(): Promise<void> {
  const config = loadConfig();
  await ensureDatabaseExists(config.database.url);
  const database = createDatabase(config.database.url, 1);
  try {
    await runMigrations(database);
    console.log("migrations applied");
  } finally {
    await database.close();
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
