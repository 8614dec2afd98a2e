import http from "node:http";
import type { AddressInfo } from "node:net";

/** A local webhook receiver: answers each path with the next status of its script (then the last one), and keeps every request. */
export class Receiver {
  readonly requests: { path: string; headers: http.IncomingHttpHeaders; body: string }[] = [];
  private readonly scripts = new Map<string, number[]>();
  private server!: http.Server;
  url = "";

  async start(): Promise<void> {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const path = req.url ?? "/";
        this.requests.push({ path, headers: req.headers, body: Buffer.concat(chunks).toString("utf8") });
        const script = this.scripts.get(path) ?? [204];
        const status = script.length > 1 ? script.shift()! : script[0]!;
        res.writeHead(status, { "content-type": "text/plain" }).end(status >= 400 ? `status ${status} from the test receiver` : "ok");
      });
    });
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  script(path: string, statuses: number[]): string {
    this.scripts.set(path, [...statuses]);
    return `${this.url}${path}`;
  }

  to(path: string) {
    return this.requests.filter((r) => r.path === path);
  }

  stop(): Promise<void> {
    return new Promise((r) => this.server.close(() => r()));
  }
}
