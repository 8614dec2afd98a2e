import { createRequire } from "node:module";
import type { History } from "@temporalio/common/lib/proto-utils";

/**
 * Temporal's JSON history format (what `temporal workflow show --output json` writes), to and from
 * the History message. @temporalio/common's historyToJSON/historyFromJSON cannot be used here: the
 * install holds two copies of protobufjs (@temporalio/common's and @temporalio/proto's), and
 * protojson refuses a message type from the other copy ("type must be a Type"). This takes protojson
 * from the copy @temporalio/proto itself loads, so type and codec always match.
 */
// CommonJS loads (not ESM interop): protobufjs looks types up on the module object itself.
const load = createRequire(__filename);
const protoRequire = createRequire(load.resolve("@temporalio/proto"));
const proto = load("@temporalio/proto") as object;
const { patchProtobufRoot } = load("@temporalio/proto/lib/patch-protobuf-root") as { patchProtobufRoot(root: object): { lookupType(name: string): unknown } };
const protojson = protoRequire("protobufjs/ext/protojson") as {
  toJson(type: unknown, message: unknown): unknown;
  fromJson(type: unknown, json: unknown, options?: { ignoreUnknownFields?: boolean }): unknown;
};
const historyType = patchProtobufRoot(proto).lookupType("temporal.api.history.v1.History");

export function historyToJson(history: History): unknown {
  return protojson.toJson(historyType, history);
}

export function historyFromJson(json: unknown): History {
  const history = protojson.fromJson(historyType, json, { ignoreUnknownFields: true }) as History | null;
  if (!history?.events?.length) throw new TypeError("not a workflow history: no events");
  return history;
}
