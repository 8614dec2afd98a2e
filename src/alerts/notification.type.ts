import { Field, ID, Int, ObjectType, registerEnumType } from "type-graphql";
import { DELIVERY_CHANNELS, DELIVERY_STATUSES, NOTIFICATION_KINDS } from "../db/schema";
import { Connection } from "../graphql/connection";

export enum NotificationKind {
  BACKUP_MISSED = "BACKUP_MISSED",
  UPLOAD_FAILED = "UPLOAD_FAILED",
  UPLOAD_ABANDONED = "UPLOAD_ABANDONED",
  VERIFICATION_FAILED = "VERIFICATION_FAILED",
  RECOVERY_FAILED = "RECOVERY_FAILED",
  RECOVERY_COMPLETED = "RECOVERY_COMPLETED",
  INSTANCE_TERMINATING = "INSTANCE_TERMINATING",
  ENCRYPTION_SUSPECTED = "ENCRYPTION_SUSPECTED",
  DELETION_REQUESTED = "DELETION_REQUESTED",
}
registerEnumType(NotificationKind, {
  name: "NotificationKind",
  description: "What a notification is about",
  valuesConfig: {
    BACKUP_MISSED: { description: "A source's scheduled backup did not happen" },
    UPLOAD_FAILED: { description: "An agent's upload failed" },
    UPLOAD_ABANDONED: { description: "An upload was started and never finished" },
    VERIFICATION_FAILED: { description: "A restore point did not boot in its verification" },
    RECOVERY_FAILED: { description: "A recovery ended FAILED" },
    RECOVERY_COMPLETED: { description: "A recovery completed: the machine runs" },
    INSTANCE_TERMINATING: { description: "A stopped machine will be terminated by the stale-machine clean-up within 2 days" },
    ENCRYPTION_SUSPECTED: { description: "An incremental changed most of the disk into random-looking data (possible ransomware encryption); its restore point is marked suspect" },
    DELETION_REQUESTED: { description: "A restore point's deletion or a retention shortening was asked for: it is in the trash until its delay passes" },
  },
});
// The GraphQL enum and the table's kinds are one list.
const _kinds: readonly `${NotificationKind}`[] = NOTIFICATION_KINDS;
void _kinds;

export enum DeliveryChannel {
  EMAIL = "EMAIL",
  WEBHOOK = "WEBHOOK",
}
registerEnumType(DeliveryChannel, { name: "DeliveryChannel" });
export enum DeliveryStatus {
  DELIVERED = "DELIVERED",
  FAILED = "FAILED",
  REJECTED = "REJECTED",
}
registerEnumType(DeliveryStatus, {
  name: "DeliveryStatus",
  valuesConfig: {
    DELIVERED: { description: "Accepted: the mail relay took it, or the webhook answered 2xx" },
    FAILED: { description: "Failed in a way that is retried (5xx, 408, 429, timeout, network), with exponential backoff for a bounded time" },
    REJECTED: { description: "Failed for good, not retried: a 4xx (other than 408/429) or 3xx answer, a refused address, a relay's permanent error" },
  },
});
const _channels: readonly `${DeliveryChannel}`[] = DELIVERY_CHANNELS;
const _statuses: readonly `${DeliveryStatus}`[] = DELIVERY_STATUSES;
void _channels;
void _statuses;

@ObjectType({ description: "One attempt to deliver a notification (or a webhook's test event) by e-mail or webhook" })
export class NotificationDelivery {
  @Field(() => ID)
  id: string;

  @Field(() => DeliveryChannel)
  channel: DeliveryChannel;

  @Field({ description: "The e-mail address or the webhook URL" })
  target: string;

  @Field(() => ID, { nullable: true, description: "The notification delivered (null: a test event)" })
  notificationId: string | null;

  @Field(() => ID, { nullable: true })
  webhookId: string | null;

  @Field(() => Int, { description: "1 for the first try, then each retry" })
  attempt: number;

  @Field(() => DeliveryStatus)
  status: DeliveryStatus;

  @Field(() => Int, { nullable: true, description: "The webhook's HTTP status (null: no answer, or e-mail)" })
  httpStatus: number | null;

  @Field(() => String, { nullable: true })
  error: string | null;

  @Field(() => String, { nullable: true, description: "The first 256 characters of the webhook's answer" })
  responseExcerpt: string | null;

  @Field(() => Int)
  durationMs: number;

  @Field({ description: "A sendTestWebhook event" })
  test: boolean;

  @Field()
  at: Date;
}

@ObjectType({ description: "Something you should hear about: a missed backup, a failed verification or recovery, a machine about to be terminated…" })
export class Notification {
  @Field(() => ID)
  id: string;

  @Field(() => NotificationKind)
  kind: NotificationKind;

  @Field()
  title: string;

  @Field({ description: "What was observed and what to do" })
  body: string;

  @Field(() => String, { nullable: true, description: "What it is about: SOURCE, BACKUP, UPLOAD, VERIFICATION, RECOVERY or INSTANCE" })
  subjectType: string | null;

  @Field(() => String, { nullable: true, description: "The source name or the id of what it is about" })
  subjectId: string | null;

  @Field()
  createdAt: Date;

  @Field(() => Date, { nullable: true })
  readAt: Date | null;
}

export const NotificationConnection = Connection("Notification", Notification);

@ObjectType({ description: "Which notifications you are e-mailed (all of them are listed in the console and sent to your webhooks)" })
export class NotificationPreferences {
  @Field(() => [NotificationKind])
  emailKinds: NotificationKind[];
}
