import "reflect-metadata";
import fs from "node:fs";
import path from "node:path";
import { printAppSchema } from "../src/graphql/schema";

// Writes schema.graphql from the code; `--check` exits 1 when the committed file has drifted.
async function main(): Promise<void> {
  const file = path.resolve(__dirname, "..", "schema.graphql");
  const sdl = await printAppSchema();
  if (process.argv.includes("--check")) {
    const current = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "";
    if (current !== sdl) {
      console.error("schema.graphql is out of date: run `npm run schema:emit` and commit it");
      process.exit(1);
    }
    console.log("schema.graphql is up to date");
    return;
  }
  fs.writeFileSync(file, sdl);
  console.log(`wrote ${file}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
