import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";

/**
 * Encryption at rest for the few secrets the product must keep (an access point's WireGuard
 * private key): AES-256-GCM under SECRETS_KEY (32 bytes), in a versioned text format
 *
 *   sb1.<base64url 12-byte IV>.<base64url ciphertext>.<base64url 16-byte tag>
 *
 * `context` (e.g. "access-point:<id>") is bound as additional authenticated data, so a sealed value
 * copied onto another row does not open there. A later format (a new key, another cipher) gets a
 * new prefix; `open` refuses anything it does not know instead of guessing.
 */
export const SECRET_BOX_VERSION = "sb1";

export class SecretBoxError extends Error {
  override name = "SecretBoxError";
}

export class SecretBox {
  private readonly key: Buffer;

  constructor(key: Buffer) {
    if (key.length !== 32) throw new SecretBoxError(`SECRETS_KEY must be 32 bytes, got ${key.length}`);
    this.key = Buffer.from(key);
  }

  seal(plaintext: string, context: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv("aes-256-gcm", this.key, iv);
    cipher.setAAD(Buffer.from(context, "utf8"));
    const ct = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
    return [SECRET_BOX_VERSION, iv.toString("base64url"), ct.toString("base64url"), cipher.getAuthTag().toString("base64url")].join(".");
  }

  open(sealed: string, context: string): string {
    const parts = sealed.split(".");
    if (parts[0] !== SECRET_BOX_VERSION || parts.length !== 4) throw new SecretBoxError(`unknown sealed-secret format "${parts[0]?.slice(0, 8) ?? ""}"`);
    const [, iv, ct, tag] = parts as [string, string, string, string];
    try {
      const decipher = createDecipheriv("aes-256-gcm", this.key, Buffer.from(iv, "base64url"));
      decipher.setAAD(Buffer.from(context, "utf8"));
      decipher.setAuthTag(Buffer.from(tag, "base64url"));
      return Buffer.concat([decipher.update(Buffer.from(ct, "base64url")), decipher.final()]).toString("utf8");
    } catch (err) {
      throw new SecretBoxError("sealed secret does not open with this key and context (wrong SECRETS_KEY, or tampered)", { cause: err });
    }
  }
}
