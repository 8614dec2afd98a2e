import { generateWgKeyPair, wgPublicKeyOf, type WgKeyPair } from "../compute/wireguard-keys";
import QRCode from "qrcode";

/**
 * WireGuard, as far as the API needs it: X25519 key pairs in wg's format (base64 of 32 raw bytes),
 * the tunnel address plan (one /24 of 100.96.0.0/12 per access point: .1 the machine, .2–.254 the
 * devices) and the wg-quick configuration a device imports, as text and as a QR code.
 */

export type { WgKeyPair };

export const generateKeyPair = generateWgKeyPair;

/** The public key of a wg private key (what `wg pubkey` prints). */
export function publicKeyOf(privateKey: string): string {
  const key = wgPublicKeyOf(privateKey);
  if (!key) throw new Error("a WireGuard key is base64 of 32 bytes");
  return key;
}

export const isWgKey = (key: string) => /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/.test(key);

/** 100.96.0.0/12: 4096 /24 subnets, one per open access point. */
export const TUNNEL_SUBNETS = 4096;
/** Device addresses per access point: .2–.254. */
export const FIRST_PEER_HOST = 2;
export const LAST_PEER_HOST = 254;

/** The n-th /24 of 100.96.0.0/12 (0 ≤ n < 4096). */
export function tunnelSubnet(index: number): { subnet: string; machine: string; prefix: string } {
  if (!Number.isInteger(index) || index < 0 || index >= TUNNEL_SUBNETS) throw new RangeError(`tunnel subnet index ${index} is outside 0–${TUNNEL_SUBNETS - 1}`);
  const prefix = `100.${96 + (index >> 8)}.${index & 255}`;
  return { subnet: `${prefix}.0/24`, machine: `${prefix}.1`, prefix };
}

export interface ClientConfig {
  deviceName: string;
  privateKey: string;
  /** The device's tunnel address. */
  address: string;
  serverPublicKey: string;
  /** host:port (UDP). */
  endpoint: string;
  /** The machine's tunnel address: the only destination routed into the tunnel. */
  machineAddress: string;
  ports: number[];
}

/**
 * A wg-quick .conf for one device. AllowedIPs is the machine's address alone, so nothing else of the
 * device's traffic goes through the tunnel (and the access point admits nothing else anyway).
 */
export function clientConfig(c: ClientConfig): string {
  return [
    `# ReClo private access for "${c.deviceName.replace(/[\r\n]/g, " ")}": reach the machine at ${c.machineAddress} (ports ${c.ports.join(", ")})`,
    "[Interface]",
    `PrivateKey = ${c.privateKey}`,
    `Address = ${c.address}/32`,
    "",
    "[Peer]",
    `PublicKey = ${c.serverPublicKey}`,
    `Endpoint = ${c.endpoint}`,
    `AllowedIPs = ${c.machineAddress}/32`,
    "PersistentKeepalive = 25",
    "",
  ].join("\n");
}

/** The configuration as an SVG QR code (what the WireGuard mobile apps scan). */
export function qrCodeSvg(text: string): Promise<string> {
  return QRCode.toString(text, { type: "svg", errorCorrectionLevel: "M", margin: 2 });
}
