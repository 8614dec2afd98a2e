import { ref } from "../columns";
import { users } from "./users";

/** The owning user of a row (every record belongs to exactly one user; deleted with the user). */
export const ownerId = () =>
  ref("user_id")
    .notNull()
    .references(() => users.id, { onDelete: "cascade" });
