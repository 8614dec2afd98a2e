#!/usr/bin/env node
// Ensure the ReClo MariaDB/MySQL database exists (used by scripts/services.sh,
// usable on its own).
//
// Usage:
//   node scripts/ensure-database.mjs [EXTRA_DB ...]
//       Connects to the server of DATABASE_URL (without selecting a database) and
//       runs CREATE DATABASE IF NOT EXISTS for the database named in the URL and
//       for every extra name given (e.g. `reclo_test`), utf8mb4/utf8mb4_unicode_ci.
//   node scripts/ensure-database.mjs --check
//       Only connects and reports whether the URL's database exists; exit 0 when
//       the server answers. Creates nothing.
//
// Environment:
//   DATABASE_URL  mysql://root@127.0.0.1:3306/reclo
//
// Exit codes: 0 ok, 1 server not reachable / SQL error, 2 bad usage or URL.
import mysql from 'mysql2/promise';

const DEFAULT_URL = 'mysql://root@127.0.0.1:3306/reclo';
const rawUrl = process.env.DATABASE_URL || DEFAULT_URL;

function fail(code, msg) {
  console.error(`[services] ${msg}`);
  process.exit(code);
}

function maskUrl(raw) {
  try {
    const u = new URL(raw);
    if (u.password) u.password = '****';
    return u.toString();
  } catch {
    return raw.replace(/(\/\/[^:/@]*:)[^@]*@/, '$1****@');
  }
}

let url;
try {
  url = new URL(rawUrl);
} catch {
  fail(2, `DATABASE_URL is not a valid URL: ${maskUrl(rawUrl)}`);
}
if (!['mysql:', 'mariadb:'].includes(url.protocol)) {
  fail(2, `DATABASE_URL must start with mysql:// or mariadb:// (got ${maskUrl(rawUrl)})`);
}

const host = url.hostname.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1';
const port = url.port ? Number(url.port) : 3306;
const user = decodeURIComponent(url.username || 'root');
const password = decodeURIComponent(url.password || '');
const mainDb = decodeURIComponent(url.pathname.replace(/^\//, ''));
const hostPort = `${host.includes(':') ? `[${host}]` : host}:${port}`;

let check = false;
const names = [];
if (mainDb) names.push(mainDb);
for (const a of process.argv.slice(2)) {
  if (a === '--check') check = true;
  else if (a === '-h' || a === '--help') {
    console.log('usage: node scripts/ensure-database.mjs [--check] [EXTRA_DB ...]');
    process.exit(0);
  } else if (a.startsWith('-')) fail(2, `ensure-database: unknown option ${a}`);
  else names.push(a);
}
for (const n of names) {
  if (!/^[A-Za-z0-9_$-]{1,64}$/.test(n)) {
    fail(2, `invalid database name ${JSON.stringify(n)} (allowed: letters, digits, _ $ -, max 64 chars)`);
  }
}

function describe(err) {
  if (!err) return 'unknown error';
  let msg = err.message;
  if (!msg && Array.isArray(err.errors)) msg = err.errors.map((e) => e.message || e.code).join('; ');
  return msg || err.code || String(err);
}

let conn;
try {
  conn = await mysql.createConnection({ host, port, user, password, connectTimeout: 5000 });
} catch (err) {
  if (err?.code === 'ER_ACCESS_DENIED_ERROR' || err?.code === 'ER_DBACCESS_DENIED_ERROR') {
    fail(
      1,
      `MariaDB/MySQL at ${hostPort} rejected the login (from DATABASE_URL=${maskUrl(rawUrl)}): ${describe(err)}. ` +
        'Check the user/password in DATABASE_URL.',
    );
  }
  fail(
    1,
    `MariaDB/MySQL is not reachable at ${hostPort} (from DATABASE_URL=${maskUrl(rawUrl)}): ${describe(err)}. ` +
      'Start MariaDB or set DATABASE_URL.',
  );
}

try {
  if (check) {
    const [[row]] = await conn.query('SELECT VERSION() AS v');
    let dbState = '';
    if (mainDb) {
      const [rows] = await conn.query('SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?', [mainDb]);
      dbState = rows.length ? `, database ${mainDb} exists` : `, database ${mainDb} MISSING (run: bash scripts/services.sh up)`;
    }
    console.log(`server ${row.v}${dbState}`);
  } else {
    if (names.length === 0) {
      console.log(`[services] MariaDB at ${hostPort} is reachable (no database name in DATABASE_URL, nothing to create)`);
    }
    for (const n of [...new Set(names)]) {
      const [res] = await conn.query(
        `CREATE DATABASE IF NOT EXISTS \`${n.replace(/`/g, '``')}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`,
      );
      const created = res && res.warningStatus === 0;
      console.log(`[services] database ${n} on ${hostPort}: ${created ? 'created' : 'exists'}`);
    }
  }
} catch (err) {
  await conn.end().catch(() => {});
  fail(1, `MariaDB/MySQL at ${hostPort} (DATABASE_URL=${maskUrl(rawUrl)}) rejected the request: ${describe(err)}`);
}
await conn.end();
