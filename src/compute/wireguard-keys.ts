import { createPrivateKey, createPublicKey, generateKeyPairSync } from "node:crypto";

/**
 * WireGuard keys as wg writes them: base64 of 32 raw X25519 bytes. One place for the key math the
 * API (device keys, access point keys) and both targets' access points (checking the key they are
 * given) share.
 */

export interface WgKeyPair {
  privateKey: string;
  publicKey: string;
}

/** The shape of a WireGuard key (base64 of 32 bytes). */
export const WG_KEY_PATTERN = /^[A-Za-z0-9+/]{43}=$/;

/** PKCS#8 DER header of an X25519 private key; the raw 32 bytes follow it. */
const PKCS8_X25519 = Buffer.from("302e020100300506032b656e04220420", "hex");

const raw32 = (der: Buffer) => der.subarray(-32).toString("base64");

export function generateWgKeyPair(): WgKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync("x25519");
  return { privateKey: raw32(privateKey.export({ format: "der", type: "pkcs8" })), publicKey: raw32(publicKey.export({ format: "der", type: "spki" })) };
}

/** The public key of a private key (what `wg pubkey` prints); null when it is not a WireGuard key. */
export function wgPublicKeyOf(privateKey: string): string | null {
  if (!WG_KEY_PATTERN.test(privateKey)) return null;
  const key = createPrivateKey({ key: Buffer.concat([PKCS8_X25519, Buffer.from(privateKey, "base64")]), format: "der", type: "pkcs8" });
  return raw32(createPublicKey(key).export({ format: "der", type: "spki" }));
}
