import { ArgsType, Field, InputType, Int } from "type-graphql";
import { PageArgsInput } from "../graphql/connection";

@InputType()
export class SetDrillPolicyInput {
  @Field({ description: "The source (as named by its backups)" })
  sourceName: string;

  @Field(() => String, { nullable: true, description: 'Interval between scheduled drills, e.g. "7d" or "12h" (at least the server\'s DRILL_MIN_INTERVAL, 1h by default); null: none' })
  every?: string | null;

  @Field(() => Boolean, { nullable: true, description: "Drill after every completed backup of the source (default false)" })
  afterEveryBackup?: boolean | null;

  @Field(() => [Int], { nullable: true, description: "Guest TCP ports to probe (default 22 and 3389; at most 8)" })
  ports?: number[] | null;
}

@ArgsType()
export class DrillsArgs extends PageArgsInput {
  @Field(() => String, { nullable: true, description: "Only this source's drills" })
  sourceName?: string | null;
}
