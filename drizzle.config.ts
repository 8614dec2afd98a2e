import { defineConfig } from "drizzle-kit";

// `npm run db:generate` writes a new migration under drizzle/ from src/db/schema; review it and
// commit it. Never `drizzle-kit push` against MariaDB (it can half-apply while exiting 0).
export default defineConfig({
  dialect: "mysql",
  schema: "./src/db/schema/index.ts",
  out: "./drizzle",
  casing: undefined,
});
