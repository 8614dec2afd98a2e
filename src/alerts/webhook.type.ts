import { Field, ID, ObjectType } from "type-graphql";
import { NotificationKind } from "./notification.type";

@ObjectType({
  description:
    "An http(s) endpoint that receives your notifications as signed JSON POSTs: body {id, kind, title, body, subject, createdAt}; headers X-ReClo-Event (the kind), X-ReClo-Delivery (the same for every retry of one notification to one webhook), X-ReClo-Timestamp (Unix seconds) and X-ReClo-Signature: sha256=<hex HMAC-SHA256 of `${timestamp}.${raw body}` keyed with the webhook's signing secret>",
})
export class Webhook {
  @Field(() => ID)
  id: string;

  @Field()
  url: string;

  @Field(() => [NotificationKind], { description: "The kinds it receives" })
  events: NotificationKind[];

  @Field()
  createdAt: Date;

  @Field(() => String, { nullable: true, description: "The signing secret: only in addWebhook's response (stored sealed, never shown again; remove and add the webhook to get a new one)" })
  signingSecret: string | null;
}
