import { Field, ID, Int, ObjectType } from "type-graphql";

@ObjectType({ description: "One device's WireGuard key for a recovered machine's private access point" })
export class AccessKey {
  @Field(() => ID)
  id: string;

  @Field({ description: "The name given when it was created (e.g. the laptop's)" })
  deviceName: string;

  @Field({ description: "The device's own address inside the tunnel, e.g. 100.96.3.2" })
  address: string;

  @Field()
  createdAt: Date;

  @Field({ description: "After this the access point no longer admits it" })
  expiresAt: Date;

  @Field(() => Date, { nullable: true })
  revokedAt: Date | null;

  @Field(() => Date, { nullable: true, description: "The device's last WireGuard handshake, as the access point reports it (null: never, or not live)" })
  lastHandshakeAt: Date | null;

  @Field(() => String, {
    nullable: true,
    description: "The device's wg-quick configuration, its private key included: only in createAccessKey's response (never stored; null everywhere else)",
  })
  wireguardConfig: string | null;

  @Field(() => String, { nullable: true, description: "wireguardConfig as an SVG QR code for the WireGuard apps: only in createAccessKey's response" })
  qrCodeSvg: string | null;
}

@ObjectType({ description: "How to reach a recovered machine: over WireGuard to its access point, then its tunnel address" })
export class PrivateAccess {
  @Field({ description: "host:port (UDP) the WireGuard client connects to" })
  endpoint: string;

  @Field({ description: "The machine's address inside the tunnel (e.g. 100.96.3.1): connect to its ports there" })
  tunnelAddress: string;

  @Field(() => [Int], { description: "The machine's declared TCP ports, the only ones that answer through the tunnel" })
  ports: number[];
}
