import type { AgentScope } from "../agent-keys/agent-key.service";
import type { Authenticated } from "../auth/auth.service";
import type { Context } from "../graphql/context";
import type { Logger } from "../logger";
import type { Services } from "../services";
import type { PageLimits } from "../shared/pagination";

/**
 * The context of one WebSocket operation. It lives as long as the subscription, so its shape
 * matters: an object literal with a getter (the lazy logger below) is a dictionary-mode object in
 * V8, with a property table of about 450 bytes per subscription, where an instance of a class
 * with the accessor on its prototype keeps fast, in-object properties.
 */
export class WsOperationContext implements Context {
  /** Made only if something logs: a subscription that joins a shared execution never does. */
  private child: Logger | undefined = undefined;

  constructor(
    public requestId: string,
    public ip: string | undefined,
    public userAgent: string | undefined,
    public auth: Authenticated,
    public services: Services,
    public limits: PageLimits,
    private readonly base: Logger,
    public agent?: AgentScope,
  ) {}

  get logger(): Logger {
    return (this.child ??= this.base.child({ requestId: this.requestId, userId: this.auth.user.id }));
  }

  set logger(value: Logger) {
    this.child = value;
  }
}
