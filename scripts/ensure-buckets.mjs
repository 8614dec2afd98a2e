#!/usr/bin/env node
// Ensure the ReClo S3 buckets exist (used by scripts/services.sh, usable on its own).
//
// Usage:
//   node scripts/ensure-buckets.mjs [--wait SECONDS] [EXTRA_BUCKET ...]
//       Optionally poll ListBuckets until the endpoint answers (up to SECONDS),
//       then create every missing bucket (S3_BACKUPS_BUCKET, S3_IMPORTS_BUCKET,
//       S3_ARTIFACTS_BUCKET and any extra names given as arguments).
//   node scripts/ensure-buckets.mjs --object-lock [--wait SECONDS]
//       As above, and the backups bucket gets S3 Object Lock: created with it when
//       missing; an existing bucket without it gets versioning and then Object Lock
//       turned on (versitygw v1.7.0 and AWS allow this on a versioned bucket). Also
//       implied by OBJECT_LOCK_MODE=GOVERNANCE|COMPLIANCE in the environment.
//   node scripts/ensure-buckets.mjs --check
//       One ListBuckets call; prints the existing bucket names (space separated)
//       and exits 0, or prints the error on stderr and exits 1. Creates nothing.
//
// Environment (same defaults as scripts/services.sh):
//   S3_ENDPOINT           http://127.0.0.1:7070
//   S3_ACCESS_KEY_ID      reclo-dev
//   S3_SECRET_ACCESS_KEY  reclo-dev-secret-key-0123456789
//   S3_REGION             us-east-1
//   S3_BACKUPS_BUCKET     reclo-backups
//   S3_IMPORTS_BUCKET     reclo-imports
//   S3_ARTIFACTS_BUCKET   reclo-artifacts
import {
  CreateBucketCommand,
  GetObjectLockConfigurationCommand,
  ListBucketsCommand,
  PutBucketVersioningCommand,
  PutObjectLockConfigurationCommand,
  S3Client,
} from '@aws-sdk/client-s3';

const env = process.env;
const endpoint = env.S3_ENDPOINT || 'http://127.0.0.1:7070';
const accessKeyId = env.S3_ACCESS_KEY_ID || 'reclo-dev';
const secretAccessKey = env.S3_SECRET_ACCESS_KEY || 'reclo-dev-secret-key-0123456789';
const region = env.S3_REGION || 'us-east-1';

function usage(msg) {
  console.error(`[services] ensure-buckets: ${msg}`);
  console.error('usage: node scripts/ensure-buckets.mjs [--check] [--wait SECONDS] [EXTRA_BUCKET ...]');
  process.exit(2);
}

let check = false;
let objectLock = ['GOVERNANCE', 'COMPLIANCE'].includes(env.OBJECT_LOCK_MODE ?? '');
let waitSeconds = 0;
const extra = [];
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (a === '--check') check = true;
  else if (a === '--object-lock') objectLock = true;
  else if (a === '--wait') {
    waitSeconds = Number(argv[++i]);
    if (!Number.isFinite(waitSeconds) || waitSeconds < 0) usage('--wait needs a number of seconds');
  } else if (a.startsWith('--wait=')) {
    waitSeconds = Number(a.slice('--wait='.length));
    if (!Number.isFinite(waitSeconds) || waitSeconds < 0) usage('--wait needs a number of seconds');
  } else if (a === '-h' || a === '--help') usage('help');
  else if (a.startsWith('-')) usage(`unknown option ${a}`);
  else extra.push(a);
}

const backupsBucket = env.S3_BACKUPS_BUCKET || 'reclo-backups';
const buckets = [
  ...new Set(
    [
      backupsBucket,
      env.S3_IMPORTS_BUCKET || 'reclo-imports',
      env.S3_ARTIFACTS_BUCKET || 'reclo-artifacts',
      ...extra,
    ].filter(Boolean),
  ),
];

const s3 = new S3Client({
  endpoint,
  region,
  forcePathStyle: true,
  credentials: { accessKeyId, secretAccessKey },
  maxAttempts: 1,
  // Newer @smithy/node-http-handler only *warns* on requestTimeout unless
  // throwOnRequestTimeout is set; a stopped (SIGSTOP) server would hang us forever.
  requestHandler: { connectionTimeout: 2000, requestTimeout: 5000, throwOnRequestTimeout: true },
});
const REQUEST_TIMEOUT_MS = 6000;
const send = (command) => s3.send(command, { abortSignal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });

/** Turn an SDK / network error into one readable line. */
function describe(err) {
  if (!err) return 'unknown error';
  const parts = [];
  const name = err.name && err.name !== 'Error' ? err.name : err.code;
  if (name) parts.push(name);
  let message = err.message;
  if (!message && Array.isArray(err.errors)) {
    message = err.errors.map((e) => e.message || e.code).join('; ');
  }
  if (message && message !== name) parts.push(message);
  const status = err.$metadata?.httpStatusCode;
  if (status) parts.push(`(HTTP ${status})`);
  let text = parts.join(': ') || String(err);
  if (/InvalidAccessKeyId|SignatureDoesNotMatch|AccessDenied/.test(text)) {
    text += ' - check S3_ACCESS_KEY_ID / S3_SECRET_ACCESS_KEY';
  }
  return text;
}

async function listBuckets() {
  const out = await send(new ListBucketsCommand({}));
  return (out.Buckets ?? []).map((b) => b.Name);
}

async function listWithWait() {
  const deadline = Date.now() + waitSeconds * 1000;
  for (;;) {
    try {
      return await listBuckets();
    } catch (err) {
      if (Date.now() >= deadline) throw err;
      await new Promise((r) => setTimeout(r, 300));
    }
  }
}

let existing;
try {
  existing = await listWithWait();
} catch (err) {
  console.error(
    `[services] S3 endpoint ${endpoint} did not answer ListBuckets${waitSeconds ? ` within ${waitSeconds}s` : ''}: ${describe(err)}`,
  );
  process.exit(1);
}

if (check) {
  console.log(existing.join(' '));
  process.exit(0);
}

/** Turns on versioning and Object Lock (no default retention: the server dates every object) on an existing bucket. */
async function enableObjectLock(bucket) {
  try {
    const r = await send(new GetObjectLockConfigurationCommand({ Bucket: bucket }));
    if (r.ObjectLockConfiguration?.ObjectLockEnabled === 'Enabled') return 'object lock already on';
  } catch (err) {
    if (err?.name !== 'ObjectLockConfigurationNotFoundError') throw err;
  }
  await send(new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: 'Enabled' } }));
  await send(new PutObjectLockConfigurationCommand({ Bucket: bucket, ObjectLockConfiguration: { ObjectLockEnabled: 'Enabled' } }));
  return 'versioning and object lock turned on';
}

let failed = false;
for (const bucket of buckets) {
  const lock = objectLock && bucket === backupsBucket;
  if (existing.includes(bucket)) {
    if (lock) {
      try {
        console.log(`[services] bucket ${bucket}: exists, ${await enableObjectLock(bucket)}`);
      } catch (err) {
        failed = true;
        console.error(`[services] could not enable object lock on bucket ${bucket}: ${describe(err)}`);
      }
      continue;
    }
    console.log(`[services] bucket ${bucket}: exists`);
    continue;
  }
  try {
    await send(
      new CreateBucketCommand({
        Bucket: bucket,
        ...(lock ? { ObjectLockEnabledForBucket: true } : {}),
        ...(region !== 'us-east-1' ? { CreateBucketConfiguration: { LocationConstraint: region } } : {}),
      }),
    );
    console.log(`[services] bucket ${bucket}: created${lock ? ' with object lock' : ''}`);
  } catch (err) {
    if (err?.name === 'BucketAlreadyOwnedByYou' || err?.name === 'BucketAlreadyExists') {
      console.log(`[services] bucket ${bucket}: exists`);
      continue;
    }
    failed = true;
    console.error(`[services] could not create bucket ${bucket} at ${endpoint}: ${describe(err)}`);
  }
}
process.exit(failed ? 1 : 0);
