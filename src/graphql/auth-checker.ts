import type { AuthChecker } from "type-graphql";
import type { Context } from "./context";

/** The one auth checker: `@Authorized()` fields need a valid, unexpired, unrevoked session. */
export const authChecker: AuthChecker<Context> = ({ context }) => Boolean(context.auth);
