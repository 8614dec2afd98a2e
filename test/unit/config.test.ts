import { describe, expect, it } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { SecretBox } from "../../src/shared/secret-box";
import { ConfigError, DEFAULT_ACCOUNTS_CONFIG, defaultVpnPublicHost, hashConcurrencyOf, loadConfig, parseDuration, threadPoolSizeFor } from "../../src/config";

const KEY = randomBytes(32).toString("base64");

describe("config", () => {
  it("has defaults that serve local development", () => {
    const c = loadConfig({});
    expect(c.http.port).toBe(4000);
    expect(c.database.url).toBe("mysql://root@127.0.0.1:3306/reclo");
    expect(c.temporal).toMatchObject({ address: "127.0.0.1:7233", namespace: "default", taskQueue: "reclo", tls: undefined });
    expect(c.s3.buckets).toEqual({ backups: "reclo-backups", imports: "reclo-imports", artifacts: "reclo-artifacts" });
    expect(c.auth.tokenTtlMs).toBe(60 * 86_400_000);
    expect(c.auth.argon2).toEqual({ memoryCost: 19_456, timeCost: 2, parallelism: 1 });
    expect(c.redisUrl).toBeUndefined();
  });

  it("AWS private access: machines in the private subnet; the gateway only with its AMI, public subnet and VPC together; AWS_SUBNET_ID is refused as renamed", () => {
    const base = { AWS_RECOVERY_ENABLED: "true", AWS_PRIVATE_SUBNET_ID: "subnet-0priv", AWS_VPC_ID: "vpc-0def" };
    expect(loadConfig(base).aws).toMatchObject({ privateSubnetId: "subnet-0priv", vpcId: "vpc-0def" });
    expect(loadConfig(base).aws.gateway).toBeUndefined();
    expect(loadConfig({ ...base, AWS_GATEWAY_AMI_ID: "ami-0gw", AWS_PUBLIC_SUBNET_ID: "subnet-0pub" }).aws.gateway).toEqual({ amiId: "ami-0gw", instanceType: "t4g.nano", publicSubnetId: "subnet-0pub", port: 51820 });
    expect(loadConfig({ ...base, AWS_GATEWAY_AMI_ID: "ami-0gw", AWS_PUBLIC_SUBNET_ID: "subnet-0pub", AWS_GATEWAY_INSTANCE_TYPE: "t3.nano", AWS_GATEWAY_PORT: "443" }).aws.gateway).toMatchObject({ instanceType: "t3.nano", port: 443 });
    const problems = (env: Record<string, string>) => {
      try {
        loadConfig(env);
        return [];
      } catch (err) {
        return (err as ConfigError).problems;
      }
    };
    expect(problems({ ...base, AWS_GATEWAY_AMI_ID: "ami-0gw" })).toEqual([expect.stringMatching(/^AWS_GATEWAY_AMI_ID and AWS_PUBLIC_SUBNET_ID: set both/)]);
    expect(problems({ AWS_GATEWAY_AMI_ID: "ami-0gw", AWS_PUBLIC_SUBNET_ID: "subnet-0pub" })).toEqual([expect.stringMatching(/^AWS_VPC_ID: required with AWS_GATEWAY_AMI_ID/)]);
    expect(problems({ ...base, AWS_SUBNET_ID: "subnet-0old" })).toEqual([expect.stringMatching(/^AWS_SUBNET_ID: renamed to AWS_PRIVATE_SUBNET_ID/)]);
    expect(problems({ ...base, AWS_GATEWAY_PORT: "70000" })).toEqual([expect.stringMatching(/^AWS_GATEWAY_PORT: must be at most 65535/)]);
  });

  it("lists every problem at once, readably, without echoing secrets", () => {
    let error: unknown;
    try {
      loadConfig({ PORT: "http", DATABASE_URL: "postgres://x", TOKEN_TTL: "forever", ARGON2_MEMORY_KIB: "12", S3_SECRET_ACCESS_KEY: "", REDIS_URL: "localhost:6379", TEMPORAL_ADDRESS: "nohost" });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems;
    expect(problems).toHaveLength(7);
    expect(problems.join("\n")).toMatch(/PORT: expected a whole number/);
    expect(problems.join("\n")).toMatch(/DATABASE_URL: expected a URL starting with mysql:\/\/ or mariadb:\/\//);
    expect(problems.join("\n")).toMatch(/TOKEN_TTL: expected a duration like 60d/);
    expect(problems.join("\n")).toMatch(/ARGON2_MEMORY_KIB: must be at least 8192/);
    expect(problems.join("\n")).toMatch(/TEMPORAL_ADDRESS: expected host:port/);
    expect((error as Error).message).toMatch(/^Invalid configuration \(7 problems\):\n  - /);
  });

  it("account e-mail: verification required by default, 24 h verification and 1 h reset links, bounded mail and token rates; the defaults match DEFAULT_ACCOUNTS_CONFIG", () => {
    expect(loadConfig({}).auth.accounts).toEqual(DEFAULT_ACCOUNTS_CONFIG);
    expect(DEFAULT_ACCOUNTS_CONFIG).toMatchObject({ requireVerifiedEmail: true, verificationTtlMs: 86_400_000, resetTtlMs: 3_600_000 });
    expect(loadConfig({ REQUIRE_VERIFIED_EMAIL: "false", PASSWORD_RESET_TTL: "15m", ACCOUNT_MAIL_MAX_PER_ACCOUNT: "2" }).auth.accounts).toMatchObject({
      requireVerifiedEmail: false,
      resetTtlMs: 900_000,
      mailRateLimit: { perAccount: 2 },
    });
    expect(() => loadConfig({ REQUIRE_VERIFIED_EMAIL: "maybe" })).toThrow(/REQUIRE_VERIFIED_EMAIL: expected true or false/);
    expect(() => loadConfig({ EMAIL_VERIFICATION_TTL: "a day" })).toThrow(/EMAIL_VERIFICATION_TTL: expected a duration/);
  });

  it("bounds the argon2 work: concurrency from the cores, a waiting room, a thread pool with room beside it, and never below OWASP's minimums", () => {
    const cores = os.availableParallelism();
    expect(loadConfig({}).auth.hashQueue).toEqual({ concurrency: Math.max(1, cores - 1), maxWaiting: 32 * Math.max(1, cores - 1) });
    expect(loadConfig({ ARGON2_CONCURRENCY: "3", ARGON2_MAX_WAITING: "0" }).auth.hashQueue).toEqual({ concurrency: 3, maxWaiting: 0 });
    expect(hashConcurrencyOf({ ARGON2_CONCURRENCY: "3" })).toBe(3);
    expect(hashConcurrencyOf({ ARGON2_CONCURRENCY: "many" })).toBe(Math.max(1, cores - 1));
    expect(threadPoolSizeFor(1)).toBe(5);
    expect(() => loadConfig({ ARGON2_CONCURRENCY: "2", UV_THREADPOOL_SIZE: "2" })).toThrow(/UV_THREADPOOL_SIZE: 2 leaves no thread for file and DNS work beside 2 argon2 slots/);
    expect(loadConfig({ ARGON2_CONCURRENCY: "2", UV_THREADPOOL_SIZE: "3" }).auth.hashQueue.concurrency).toBe(2);
    expect(() => loadConfig({ ARGON2_MAX_WAITING: "-1" })).toThrow(/ARGON2_MAX_WAITING: must be at least 0/);
    // OWASP's equivalent pairs: 19 MiB × 2 passes, 46 MiB × 1, 12 MiB × 3, 9 MiB × 4, 7 MiB × 5.
    expect(() => loadConfig({ ARGON2_MEMORY_KIB: "19456", ARGON2_TIME_COST: "1" })).toThrow(/19456 KiB × 1 is below OWASP's argon2id minimums/);
    expect(() => loadConfig({ ARGON2_MEMORY_KIB: "8192", ARGON2_TIME_COST: "4" })).toThrow(/below OWASP/);
    expect(loadConfig({ ARGON2_MEMORY_KIB: "47104", ARGON2_TIME_COST: "1" }).auth.argon2.memoryCost).toBe(47_104);
    expect(loadConfig({ ARGON2_MEMORY_KIB: "9216", ARGON2_TIME_COST: "4" }).auth.argon2.timeCost).toBe(4);
  });

  it("enables TLS for Temporal Cloud when an API key is set, and checks pairs", () => {
    expect(loadConfig({ TEMPORAL_API_KEY: "k", TEMPORAL_ADDRESS: "ns.acct.tmprl.cloud:7233" }).temporal.tls).toBeDefined();
    expect(() => loadConfig({ TEMPORAL_TLS_CERT_PATH: "/a.pem" })).toThrow(/TEMPORAL_TLS_CERT_PATH and TEMPORAL_TLS_KEY_PATH/);
    expect(() => loadConfig({ NODE_ENV: "production" })).toThrow(/development default must not be used in production/);
  });

  it("trusts proxies only by hop count or by their addresses/CIDRs; `true` is refused with the reason", () => {
    expect(loadConfig({}).http.trustProxy).toBe(false);
    expect(loadConfig({ TRUST_PROXY: "false" }).http.trustProxy).toBe(false);
    expect(loadConfig({ TRUST_PROXY: "1" }).http.trustProxy).toBe(1);
    expect(loadConfig({ TRUST_PROXY: "10.0.0.0/8, 192.168.1.10,fd00::/8" }).http.trustProxy).toEqual(["10.0.0.0/8", "192.168.1.10", "fd00::/8"]);
    expect(() => loadConfig({ TRUST_PROXY: "true" })).toThrow(/TRUST_PROXY: "true" would believe the X-Forwarded-For any client sends.*hop.*CIDR/);
    expect(() => loadConfig({ TRUST_PROXY: "10.0.0.0/33" })).toThrow(/TRUST_PROXY: .*not an address or CIDR: 10\.0\.0\.0\/33/);
    expect(() => loadConfig({ TRUST_PROXY: "loopback" })).toThrow(/TRUST_PROXY/);
  });

  it("Object Lock: COMPLIANCE for 30 days in production, off in development unless asked for, at least a second", () => {
    expect(loadConfig({}).s3.objectLock).toBeNull();
    const prod = { NODE_ENV: "production", S3_ENDPOINT: "http://127.0.0.1:7070", SECRETS_KEY: KEY };
    expect(loadConfig(prod).s3.objectLock).toEqual({ mode: "COMPLIANCE", retentionMs: 30 * 86_400_000 });
    expect(loadConfig({ ...prod, OBJECT_LOCK_MODE: "OFF" }).s3.objectLock).toBeNull();
    expect(loadConfig({ OBJECT_LOCK_MODE: "GOVERNANCE", OBJECT_LOCK_DAYS: "0.5" }).s3.objectLock).toEqual({ mode: "GOVERNANCE", retentionMs: 43_200_000 });
    expect(() => loadConfig({ OBJECT_LOCK_MODE: "GOVERNANCE", OBJECT_LOCK_DAYS: "0.000001" })).toThrow(/OBJECT_LOCK_DAYS/);
    expect(() => loadConfig({ OBJECT_LOCK_MODE: "LEGAL" })).toThrow(/OBJECT_LOCK_MODE/);
  });

  it("production refuses the published S3 development secret unless the store is explicitly on loopback", () => {
    expect(() => loadConfig({ NODE_ENV: "production", S3_ENDPOINT: "http://s3.example.com" })).toThrow(/S3_SECRET_ACCESS_KEY/);
    expect(loadConfig({ NODE_ENV: "production", S3_ENDPOINT: "http://127.0.0.1:7070", SECRETS_KEY: KEY }).env).toBe("production");
    expect(loadConfig({ NODE_ENV: "production", S3_ENDPOINT: "http://s3.example.com", S3_SECRET_ACCESS_KEY: "a-real-secret-of-our-own", SECRETS_KEY: KEY }).env).toBe("production");
  });

  it("SECRETS_KEY: 32 bytes inline or from a file; development makes one in the data dir; production refuses to go without; never printed", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "reclo-secrets-"));
    try {
      const dev = loadConfig({ RECLO_DATA_DIR: dir });
      const file = path.join(dir, "secrets.key");
      expect(fs.statSync(file).mode & 0o777).toBe(0o600);
      expect(dev.secrets.key).toHaveLength(32);
      expect(dev.secrets.source).toBe(file);
      expect(loadConfig({ RECLO_DATA_DIR: dir }).secrets.key.equals(dev.secrets.key)).toBe(true);
      // Not enumerable: a logged or serialized config never carries it.
      expect(JSON.stringify(dev)).not.toContain(dev.secrets.key.toString("base64"));
      expect(Object.keys(dev.secrets)).toEqual(["source"]);

      const empty = fs.mkdtempSync(path.join(dir, "prod-"));
      expect(() => loadConfig({ NODE_ENV: "production", S3_ENDPOINT: "http://127.0.0.1:7070", RECLO_DATA_DIR: empty })).toThrow(/SECRETS_KEY: not set, and .*secrets\.key does not exist/);
      expect(fs.existsSync(path.join(empty, "secrets.key"))).toBe(false);
      expect(loadConfig({ NODE_ENV: "production", S3_ENDPOINT: "http://127.0.0.1:7070", RECLO_DATA_DIR: empty, SECRETS_KEY_FILE: file }).secrets.key.equals(dev.secrets.key)).toBe(true);
      expect(loadConfig({ SECRETS_KEY: KEY }).secrets.key.toString("base64")).toBe(KEY);

      expect(() => loadConfig({ SECRETS_KEY: randomBytes(16).toString("base64") })).toThrow(/SECRETS_KEY: expected base64 of 32 random bytes.*got 16 bytes/);
      expect(() => loadConfig({ SECRETS_KEY_FILE: path.join(dir, "missing.key") })).toThrow(/SECRETS_KEY_FILE: cannot read .*missing\.key \(ENOENT\)/);
      let message = "";
      try {
        loadConfig({ SECRETS_KEY: "not-base64-at-all!" });
      } catch (err) {
        message = String(err);
      }
      expect(message).toMatch(/SECRETS_KEY/);
      expect(message).not.toContain("not-base64-at-all!");
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("SecretBox: AES-256-GCM in a versioned format, bound to its context; tampering or another key does not open", () => {
    const box = new SecretBox(Buffer.from(KEY, "base64"));
    const sealed = box.seal("wg private key", "access-point:1");
    expect(sealed).toMatch(/^sb1\.[\w-]{16}\.[\w-]+\.[\w-]{22}$/);
    expect(sealed).not.toBe(box.seal("wg private key", "access-point:1"));
    expect(box.open(sealed, "access-point:1")).toBe("wg private key");
    expect(() => box.open(sealed, "access-point:2")).toThrow(/does not open/);
    const parts = sealed.split(".");
    const flipped = Buffer.from(parts[2]!, "base64url");
    flipped[0]! ^= 1;
    expect(() => box.open([parts[0], parts[1], flipped.toString("base64url"), parts[3]].join("."), "access-point:1")).toThrow(/does not open/);
    expect(() => new SecretBox(randomBytes(32)).open(sealed, "access-point:1")).toThrow(/does not open/);
    expect(() => box.open(sealed.replace(/^sb1/, "sb9"), "access-point:1")).toThrow(/unknown sealed-secret format "sb9"/);
    expect(() => new SecretBox(randomBytes(16))).toThrow(/32 bytes/);
  });

  it("QEMU runs as an unprivileged user when the worker is root, never as root", () => {
    const root = process.getuid?.() === 0;
    expect(loadConfig({}).local.runAs).toBe(root ? "reclo-qemu" : undefined);
    expect(loadConfig({ QEMU_RUNAS: "kvm-guests" }).local.runAs).toBe("kvm-guests");
    expect(() => loadConfig({ QEMU_RUNAS: "root" })).toThrow(/QEMU_RUNAS: QEMU must not run as root/);
    expect(() => loadConfig({ QEMU_RUNAS: "a b;rm" })).toThrow(/QEMU_RUNAS: expected a user name/);
  });

  it("local access points: listen address, public endpoint host, UDP port range and helper binary, checked", () => {
    const vpn = loadConfig({ RECLO_DATA_DIR: "/srv/reclo" }).local.vpn!;
    expect(vpn).toMatchObject({ helperBinary: "/srv/reclo/bin/reclo-wg", listenAddress: "0.0.0.0", portRange: { first: 51820, last: 51919 } });
    expect(vpn.publicHost).toBe(defaultVpnPublicHost("0.0.0.0"));
    const set = loadConfig({ VPN_LISTEN_ADDRESS: "192.0.2.7", VPN_PORT_RANGE: "40000-40009", VPN_PUBLIC_ENDPOINT: "vpn.example.com", VPN_HELPER_BINARY: "/opt/reclo-wg" }).local.vpn!;
    expect(set).toMatchObject({ helperBinary: "/opt/reclo-wg", listenAddress: "192.0.2.7", publicHost: "vpn.example.com", portRange: { first: 40000, last: 40009 } });
    // Never root: as root it drops to reclo-wg unless told another unprivileged user.
    expect(vpn.runAs).toBe(process.getuid?.() === 0 ? "reclo-wg" : undefined);
    expect(loadConfig({ VPN_RUNAS: "wg-access" }).local.vpn!.runAs).toBe("wg-access");
    expect(() => loadConfig({ VPN_RUNAS: "root" })).toThrow(/VPN_RUNAS: the WireGuard helper must not run as root/);
    // A specific listen address is what clients are told to reach when nothing else is set.
    expect(loadConfig({ VPN_LISTEN_ADDRESS: "192.0.2.7" }).local.vpn!.publicHost).toBe("192.0.2.7");
    expect(() => loadConfig({ VPN_PORT_RANGE: "51919-51820" })).toThrow(/VPN_PORT_RANGE: expected a UDP port range/);
    expect(() => loadConfig({ VPN_PORT_RANGE: "0-10" })).toThrow(/VPN_PORT_RANGE/);
    expect(() => loadConfig({ VPN_LISTEN_ADDRESS: "any" })).toThrow(/VPN_LISTEN_ADDRESS: expected an IP address/);
    expect(() => loadConfig({ VPN_PUBLIC_ENDPOINT: "vpn.example.com:51820" })).toThrow(/VPN_PUBLIC_ENDPOINT: expected a host name or IP address \(no port\)/);
    // The first non-loopback IPv4 of the host; loopback only: 127.0.0.1.
    const lo = { address: "127.0.0.1", netmask: "255.0.0.0", family: "IPv4", mac: "00:00:00:00:00:00", internal: true, cidr: "127.0.0.1/8" } as const;
    const v6 = { address: "fd00::2", netmask: "ffff::", family: "IPv6", mac: "02:00:00:00:00:01", internal: false, cidr: "fd00::2/64", scopeid: 0 } as const;
    const eth = { address: "192.0.2.2", netmask: "255.255.255.0", family: "IPv4", mac: "02:00:00:00:00:01", internal: false, cidr: "192.0.2.2/24" } as const;
    expect(defaultVpnPublicHost("0.0.0.0", { lo: [lo], eth0: [v6, eth] })).toBe("192.0.2.2");
    expect(defaultVpnPublicHost("0.0.0.0", { lo: [lo] })).toBe("127.0.0.1");
  });

  it("parses durations", () => {
    expect(parseDuration("60d")).toBe(5_184_000_000);
    expect(parseDuration("1500ms")).toBe(1500);
    expect(parseDuration("2.5s")).toBe(2500);
    expect(parseDuration("250")).toBe(250);
    expect(parseDuration("soon")).toBeUndefined();
  });
});
