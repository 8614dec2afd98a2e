import { Field, ID, InputType } from "type-graphql";

@InputType()
export class CreateAccessKeyInput {
  @Field(() => ID, { description: "One of your RUNNING machines with private access" })
  instanceId: string;

  @Field({ description: "Names the device (1–64 letters, digits, spaces or . _ - ' ( ))" })
  deviceName: string;
}
