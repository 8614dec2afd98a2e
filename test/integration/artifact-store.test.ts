import { randomBytes, randomUUID } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config";
import { createS3Client, createStores } from "../../src/storage/s3";

// Real versitygw (started by test/global-setup.ts); a fresh prefix per run so runs never collide.
const config = loadConfig({});
const s3 = createS3Client(config.s3);
const { artifacts } = createStores(s3, config.s3);
const prefix = `${randomUUID()}/artifact-store-test`;

afterAll(() => s3.destroy());

describe("ArtifactStore on S3 (real versitygw)", () => {
  it("stores an artifact, hands it out through a presigned GET with its content type, and deletes it idempotently", async () => {
    const key = `${prefix}/shot.png`;
    const body = randomBytes(4096);
    await artifacts.put(key, body, "image/png");

    const before = Date.now();
    const link = await artifacts.presignGet(key);
    expect(link.expiresAt.getTime()).toBeGreaterThanOrEqual(before + artifacts.urlExpirySeconds * 1000);
    expect(new URL(link.url).searchParams.get("X-Amz-Expires")).toBe(String(artifacts.urlExpirySeconds));
    const res = await fetch(link.url);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("image/png");
    expect(Buffer.from(await res.arrayBuffer()).equals(body)).toBe(true);

    // A shorter lifetime on request.
    expect(new URL((await artifacts.presignGet(key, 60)).url).searchParams.get("X-Amz-Expires")).toBe("60");

    await artifacts.delete(key);
    const gone = await fetch(link.url);
    expect(gone.status).toBe(404);
    await gone.body?.cancel();
    await expect(artifacts.delete(key)).resolves.toBeUndefined();
  });
});
