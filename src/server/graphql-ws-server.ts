import type http from "node:http";
import { CloseCode, DEPRECATED_GRAPHQL_WS_PROTOCOL, handleProtocols, makeServer, type ConnectionInitMessage, type ServerOptions } from "graphql-ws";
import type { WebSocket, WebSocketServer } from "ws";

/** What each connection's context carries: graphql-ws's `Extra` of `graphql-ws/use/ws`. */
export interface WsExtra {
  readonly socket: WebSocket;
  readonly request: http.IncomingMessage;
}

/**
 * graphql-ws on a `ws` server: `useServer` from `graphql-ws/use/ws` (6.4.2), built on graphql-ws's
 * public `makeServer`, with one difference. Its message listener was an async function that awaited
 * the message handler with the received Buffer still in its frame — and for a `subscribe` message the
 * handler runs as long as the subscription, so every open subscription kept its raw subscribe message
 * (about 750 bytes for the console's recoveryProgress) besides the text graphql-ws decodes from it.
 * Here the listener decodes the text and lets the Buffer go. Everything else (protocol check,
 * keep-alive pings, error handling, close reasons, dispose) is the same.
 */
export function useWsServer<P extends ConnectionInitMessage["payload"] = ConnectionInitMessage["payload"], E extends Record<PropertyKey, unknown> = Record<PropertyKey, never>>(
  options: ServerOptions<P, WsExtra & Partial<E>> & { isProd?: boolean },
  ws: WebSocketServer,
  keepAlive = 12_000,
): { dispose(): Promise<void> } {
  const isProd = typeof options.isProd === "boolean" ? options.isProd : process.env.NODE_ENV === "production";
  const server = makeServer(options);
  const internalError = (err: unknown) => (isProd ? "Internal server error" : limitCloseReason(err instanceof Error ? err.message : String(err), "Internal server error"));
  ws.options.handleProtocols = handleProtocols;

  ws.once("error", (err) => {
    console.error("Internal error emitted on the WebSocket server. Please check your implementation.", err);
    let firstErr: unknown = null;
    for (const client of ws.clients) {
      try {
        client.close(CloseCode.InternalServerError, internalError(err));
      } catch (err2) {
        firstErr = firstErr ?? err2;
      }
    }
    if (firstErr) throw firstErr;
  });

  ws.on("connection", (socket, request) => {
    socket.once("error", (err) => {
      console.error("Internal error emitted on a WebSocket socket. Please check your implementation.", err);
      socket.close(CloseCode.InternalServerError, internalError(err));
    });
    let pongWait: NodeJS.Timeout | null = null;
    const pingInterval =
      keepAlive > 0 && isFinite(keepAlive)
        ? setInterval(() => {
            if (socket.readyState === socket.OPEN) {
              pongWait = setTimeout(() => socket.terminate(), keepAlive);
              socket.once("pong", () => {
                if (pongWait) {
                  clearTimeout(pongWait);
                  pongWait = null;
                }
              });
              socket.ping();
            }
          }, keepAlive)
        : null;

    const handle = async (cb: (data: string) => Promise<void>, data: string) => {
      try {
        await cb(data);
      } catch (err) {
        console.error("Internal error occurred during message handling. Please check your implementation.", err);
        socket.close(CloseCode.InternalServerError, internalError(err));
      }
    };
    const closed = server.opened(
      {
        protocol: socket.protocol,
        send: (data) =>
          new Promise<void>((resolve, reject) => {
            if (socket.readyState !== socket.OPEN) return resolve();
            socket.send(data, (err) => (err ? reject(err) : resolve()));
          }),
        close: (code, reason) => socket.close(code, reason),
        // Synchronous: the received Buffer is not kept while the handler (a whole subscription) runs.
        onMessage: (cb) => socket.on("message", (event) => void handle(cb, String(event))),
      },
      { socket, request } as WsExtra & Partial<E>,
    );

    socket.once("close", (code, reason) => {
      if (pongWait) clearTimeout(pongWait);
      if (pingInterval) clearInterval(pingInterval);
      if (!isProd && code === CloseCode.SubprotocolNotAcceptable && socket.protocol === DEPRECATED_GRAPHQL_WS_PROTOCOL)
        console.warn(
          `Client provided the unsupported and deprecated subprotocol "${socket.protocol}" used by subscriptions-transport-ws. Please see https://www.apollographql.com/docs/apollo-server/data/subscriptions/#switching-from-subscriptions-transport-ws.`,
        );
      void closed(code, String(reason));
    });
  });

  return {
    dispose: async () => {
      for (const client of ws.clients) client.close(1001, "Going away");
      ws.removeAllListeners();
      await new Promise<void>((resolve, reject) => ws.close((err) => (err ? reject(err) : resolve())));
    },
  };
}

/** A WebSocket close reason is at most 123 bytes (graphql-ws's rule). */
function limitCloseReason(reason: string, whenTooLong: string): string {
  return reason.length < 124 ? reason : whenTooLong;
}
