import { ArgsType, Field, InputType } from "type-graphql";
import { PageArgsInput } from "../graphql/connection";
import { NotificationKind } from "./notification.type";

@ArgsType()
export class NotificationsArgs extends PageArgsInput {
  @Field(() => Boolean, { nullable: true, description: "Only the unread ones" })
  unreadOnly?: boolean | null;
}

@InputType()
export class NotificationPreferencesInput {
  @Field(() => [NotificationKind], { description: "The kinds you are e-mailed (an empty list: no e-mail)" })
  emailKinds: NotificationKind[];
}

@InputType()
export class AddWebhookInput {
  @Field({ description: "http:// or https://, no user name or password in it, reaching a public address" })
  url: string;

  @Field(() => [NotificationKind], { description: "The kinds it receives (at least one)" })
  events: NotificationKind[];
}
