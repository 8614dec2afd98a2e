import fs from "node:fs";
import os from "node:os";
import QRCode from "qrcode";
import { CreateAccessKeyDocument, InstanceAccessDocument, RevokeAccessKeyDocument } from "../client/generated/graphql";
import { authedClient } from "./api-client";
import { str, type CommandContext } from "./command";
import { UsageError } from "./errors";
import { formatDate, printTable } from "./format";

/**
 * Private access from the CLI (issue 15): `reclo instance connect <id>` makes a WireGuard key for
 * this device and prints its configuration (or writes it, mode 0600) with a QR code on a terminal;
 * `instance keys <id>` lists the machine's keys; `instance revoke-key <key-id>` revokes one. The
 * private key exists only in the one createAccessKey answer: save it now or make another key.
 */

export const ACCESS_ACTIONS = new Set(["connect", "keys", "revoke-key"]);

export const ACCESS_USAGE = `  connect     Make a WireGuard key for this device and print its configuration (and a QR code
              on a terminal); --device NAME (default: this host's name), --output FILE (written
              with mode 0600). The private key is shown only this once.
  keys        The machine's WireGuard keys (device, tunnel address, expiry, last handshake)
  revoke-key  reclo instance revoke-key <key-id>: the machine stops admitting that device`;

export async function accessAction(action: string, id: string, { io, values, settings }: CommandContext): Promise<number> {
  const client = authedClient(settings);
  const json = Boolean(values.json);

  if (action === "connect") {
    const deviceName = str(values.device) ?? os.hostname().slice(0, 64);
    const output = str(values.output);
    const { createAccessKey: key } = await client.request(CreateAccessKeyDocument, { input: { instanceId: id, deviceName } });
    const conf = key.wireguardConfig ?? "";
    if (output) {
      // Created 0600, and an existing file is narrowed to 0600 before the key is written into it.
      const fd = fs.openSync(output, "w", 0o600);
      try {
        fs.fchmodSync(fd, 0o600);
        fs.writeSync(fd, conf);
      } finally {
        fs.closeSync(fd);
      }
    }
    if (json) io.stdout.write(`${JSON.stringify({ ...key, ...(output ? { output } : {}) }, null, 2)}\n`);
    else if (!output) io.stdout.write(conf);
    if (!json) {
      const terminal = io.stderr.isTTY;
      if (terminal) io.stderr.write(`${await QRCode.toString(conf, { type: "utf8", errorCorrectionLevel: "M" })}\n`);
      io.stderr.write(
        [
          `Key ${key.id} for "${key.deviceName}": this device is ${key.address} in the tunnel; it works until ${formatDate(key.expiresAt)}.`,
          output ? `Configuration written to ${output} (mode 0600). Import it: wg-quick up ${output}, or the WireGuard app.` : "Save this configuration (wg-quick .conf): its private key is shown only this once.",
          terminal ? "Or scan the QR code above with the WireGuard app." : "",
          `Revoke it with \`reclo instance revoke-key ${key.id}\`.`,
        ]
          .filter(Boolean)
          .join("\n") + "\n",
      );
    }
    return 0;
  }

  if (action === "keys") {
    const { instance } = await client.request(InstanceAccessDocument, { id });
    if (json) {
      io.stdout.write(`${JSON.stringify({ privateAccess: instance.privateAccess, accessKeys: instance.accessKeys }, null, 2)}\n`);
      return 0;
    }
    const p = instance.privateAccess;
    io.stdout.write(
      p
        ? `Machine ${instance.name}: WireGuard endpoint ${p.endpoint}; the machine is ${p.tunnelAddress}, ports ${p.ports.join(", ")}.\n`
        : `Machine ${instance.name} (${instance.state}) has no private access point.\n`,
    );
    if (!instance.accessKeys.length) {
      io.stdout.write(`No keys yet: \`reclo instance connect ${instance.id}\` makes one for this device.\n`);
      return 0;
    }
    const now = Date.now();
    printTable(
      io.stdout,
      ["KEY", "DEVICE", "ADDRESS", "CREATED", "STATUS", "LAST HANDSHAKE"],
      instance.accessKeys.map((k) => [
        k.id,
        k.deviceName,
        k.address,
        formatDate(k.createdAt),
        k.revokedAt ? `revoked ${formatDate(k.revokedAt)}` : Date.parse(k.expiresAt) <= now ? `expired ${formatDate(k.expiresAt)}` : `live until ${formatDate(k.expiresAt)}`,
        k.lastHandshakeAt ? formatDate(k.lastHandshakeAt) : "-",
      ]),
    );
    return 0;
  }

  if (action === "revoke-key") {
    const { revokeAccessKey: k } = await client.request(RevokeAccessKeyDocument, { id });
    if (json) io.stdout.write(`${JSON.stringify(k, null, 2)}\n`);
    else io.stdout.write(`Key ${k.id} ("${k.deviceName}", ${k.address}) is revoked: the machine no longer admits it.\n`);
    return 0;
  }
  throw new UsageError(`unknown action ${JSON.stringify(action)}`);
}
