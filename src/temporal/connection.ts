import fs from "node:fs";
import type { Config } from "../config";

type TemporalConfig = Config["temporal"];

/** TLS/API-key options shared by the client Connection and the worker NativeConnection. */
export function temporalConnectionOptions(t: TemporalConfig) {
  const read = (p?: string) => (p ? fs.readFileSync(p) : undefined);
  const tls = t.tls
    ? {
        serverNameOverride: t.tls.serverName,
        serverRootCACertificate: read(t.tls.caPath),
        clientCertPair: t.tls.certPath && t.tls.keyPath ? { crt: read(t.tls.certPath)!, key: read(t.tls.keyPath)! } : undefined,
      }
    : undefined;
  return { address: t.address, tls, apiKey: t.apiKey };
}
