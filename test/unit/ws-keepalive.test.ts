import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { buildSchema } from "graphql";
import { GRAPHQL_TRANSPORT_WS_PROTOCOL } from "graphql-ws";
import WebSocket, { WebSocketServer } from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useWsServer } from "../../src/server/graphql-ws-server";
import { waitFor } from "../helpers/wait";

/** The keep-alive of the WebSocket server: a ping every `keepAlive` ms; no pong by the next one and the socket is terminated. */
describe("WebSocket keep-alive", () => {
  // Long enough that a loaded machine answers in time (the product's is 12 s).
  const keepAlive = 400;
  let server: http.Server;
  let wss: WebSocketServer;
  let url: string;
  let dispose: () => Promise<void>;

  beforeAll(async () => {
    server = http.createServer();
    wss = new WebSocketServer({ server });
    ({ dispose } = useWsServer({ schema: buildSchema("type Query { a: Int }") }, wss, keepAlive));
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await dispose();
    server.close();
  });

  const connect = async (autoPong: boolean) => {
    const client = new WebSocket(url, GRAPHQL_TRANSPORT_WS_PROTOCOL, { autoPong });
    const pings: number[] = [];
    client.on("ping", () => pings.push(Date.now()));
    await once(client, "open");
    return { client, pings };
  };
  it("a client that answers stays connected, ping after ping", async () => {
    const { client, pings } = await connect(true);
    await waitFor("three pings", () => pings.length >= 3, 10_000, 10);
    expect(client.readyState).toBe(WebSocket.OPEN);
    expect(wss.clients.size).toBe(1);
    client.close();
    await once(client, "close");
  });

  it("a client that stops answering is terminated after the next wait", async () => {
    const { client, pings } = await connect(false);
    const [code] = (await once(client, "close")) as [number];
    // Terminated (no close frame: 1006), after being pinged.
    expect(code).toBe(1006);
    expect(pings.length).toBeGreaterThanOrEqual(1);
  });
});
