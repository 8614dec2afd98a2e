import { Field, ID, ObjectType, registerEnumType } from "type-graphql";

export enum TrashItemKind {
  BACKUP = "BACKUP",
  RETENTION_POLICY = "RETENTION_POLICY",
}
registerEnumType(TrashItemKind, {
  name: "TrashItemKind",
  valuesConfig: { BACKUP: { description: "A restore point whose deletion was asked for" }, RETENTION_POLICY: { description: "A shortening of the retention policy" } },
});

@ObjectType({ description: "Something deleted or shortened that has not taken effect yet (DELETION_DELAY): restoreFromTrash undoes it" })
export class TrashItem {
  @Field(() => ID, { description: "The backup's id, or RetentionPolicy:<your user id>" })
  id: string;

  @Field(() => TrashItemKind)
  kind: TrashItemKind;

  @Field({ description: "What will be deleted or changed" })
  what: string;

  @Field()
  requestedAt: Date;

  @Field(() => String, { nullable: true, description: "Who asked: user and client address" })
  requestedBy: string | null;

  @Field({ description: "When it takes effect (the next maintenance run after this carries it out)" })
  effectiveAt: Date;
}
