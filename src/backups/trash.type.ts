import { Field, ID, ObjectType, registerEnumType } from "type-graphql";

export enum TrashItemKind {
  BACKUP = "BACKUP",
  RETENTION_POLICY = "RETENTION_POLICY",
  SOURCE = "SOURCE",
  AGENT_KEYS = "AGENT_KEYS",
}
registerEnumType(TrashItemKind, {
  name: "TrashItemKind",
  valuesConfig: { BACKUP: { description: "A restore point whose deletion was asked for" }, RETENTION_POLICY: { description: "A shortening of the retention policy" },
    SOURCE: { description: "A source whose deletion was asked for: when it takes effect, its restore points are deleted, its agent keys revoked and its schedule removed" },
    AGENT_KEYS: { description: "A revocation of all your agent keys (those still active when it takes effect)" },
  },
});

@ObjectType({ description: "Something deleted or shortened that has not taken effect yet (DELETION_DELAY): restoreFromTrash undoes it" })
export class TrashItem {
  @Field(() => ID, { description: "The backup's id, RetentionPolicy:<your user id>, Source:<source name> or AgentKeys:<your user id>" })
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
