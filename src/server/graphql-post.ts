import type http from "node:http";
import { HeaderMap, type ApolloServer, type BaseContext } from "@apollo/server";

/**
 * POST /graphql with a JSON body, straight from node:http to Apollo (`executeHTTPGraphQLRequest`,
 * the call Apollo's own Express integration makes), without Express's router, body parser and
 * `res.send` (which hashed every answer for an ETag that `no-store` makes useless). That path was
 * ~8 % of the API's CPU per request (bench/README, "graphql"). What Express did here is done the
 * same way: the body limit (413) and malformed JSON (400) answered in GraphQL's error shape, a
 * top-level value that is not an object or an array refused as body-parser's strict mode does, an
 * empty body read as `{}`. Anything else (another content type or charset, a compressed body, GET)
 * goes through Express as before.
 */
export interface GraphqlPostOptions<C extends BaseContext> {
  apollo: ApolloServer<C>;
  maxBodyBytes: number;
  /** The answers the Express path gives: a body over the limit (413), not JSON (400), an unexpected failure (500). */
  answers: { tooLarge: unknown; notJson: unknown; internal: unknown };
  /** A refusal before parsing (the token count), or nothing to let Apollo run it. */
  precheck(body: unknown): { status: number; body: unknown } | undefined;
  context(req: http.IncomingMessage): Promise<C>;
  /** An unexpected failure while answering (logged by the caller; the client gets a 500). */
  onError(err: unknown, req: http.IncomingMessage): void;
}

const JSON_TYPE = /^application\/json\s*(?:;\s*charset\s*=\s*"?utf-8"?\s*)?$/i;

/** Whether this request is one the lean path answers exactly as the Express path would. */
export function isPlainGraphqlPost(req: http.IncomingMessage): boolean {
  if (req.method !== "POST") return false;
  const url = req.url ?? "";
  if (url !== "/graphql" && !url.startsWith("/graphql?")) return false;
  const type = req.headers["content-type"];
  if (type === undefined || !JSON_TYPE.test(type)) return false;
  const encoding = req.headers["content-encoding"];
  return encoding === undefined || encoding.toLowerCase() === "identity";
}

/** Sends a refusal before Apollo sees the request (over the limit, not JSON, too many tokens), as Express's `res.json` would. */
function refuse(res: http.ServerResponse, status: number, body: unknown): void {
  const json = JSON.stringify(body);
  res.statusCode = status;
  res.setHeader("content-type", "application/json; charset=utf-8");
  res.setHeader("content-length", Buffer.byteLength(json));
  res.end(json);
}

export function graphqlPostHandler<C extends BaseContext>(opts: GraphqlPostOptions<C>): (req: http.IncomingMessage, res: http.ServerResponse) => void {
  const { tooLarge, notJson, internal } = opts.answers;

  const answer = async (req: http.IncomingMessage, res: http.ServerResponse, raw: Buffer): Promise<void> => {
    let body: unknown = {};
    if (raw.length) {
      try {
        body = JSON.parse(raw.toString("utf8"));
      } catch {
        return refuse(res, 400, notJson);
      }
      // body-parser's strict mode: a JSON body is an object or an array.
      if (typeof body !== "object" || body === null) return refuse(res, 400, notJson);
    }
    const refused = opts.precheck(body);
    if (refused) return refuse(res, refused.status, refused.body);

    const headers = new HeaderMap();
    for (const [key, value] of Object.entries(req.headers)) if (value !== undefined) headers.set(key, Array.isArray(value) ? value.join(", ") : value);
    const url = req.url!;
    const q = url.indexOf("?");
    const response = await opts.apollo.executeHTTPGraphQLRequest({
      httpGraphQLRequest: { method: "POST", headers, search: q < 0 ? "" : url.slice(q), body },
      context: () => opts.context(req),
    });
    for (const [key, value] of response.headers) res.setHeader(key, value);
    res.statusCode = response.status ?? 200;
    if (response.body.kind === "complete") {
      res.setHeader("content-length", Buffer.byteLength(response.body.string));
      res.end(response.body.string);
      return;
    }
    for await (const chunk of response.body.asyncIterator) res.write(chunk);
    res.end();
  };

  return (req, res) => {
    const fail = (err: unknown) => {
      opts.onError(err, req);
      if (res.headersSent) res.destroy();
      else refuse(res, 500, internal);
    };
    const refuseTooLarge = () => {
      // The rest of the body is not read: the connection ends with this answer.
      res.setHeader("connection", "close");
      refuse(res, 413, tooLarge);
    };
    const declared = Number(req.headers["content-length"]);
    if (declared > opts.maxBodyBytes) return refuseTooLarge();
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on("data", (chunk: Buffer) => {
      if (over) return;
      size += chunk.length;
      if (size > opts.maxBodyBytes) {
        over = true;
        chunks.length = 0;
        refuseTooLarge();
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => {
      if (over) return;
      answer(req, res, chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)).catch(fail);
    });
    req.on("error", (err) => {
      if (!over) fail(err);
    });
  };
}
