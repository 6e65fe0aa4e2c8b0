import assert from 'node:assert/strict';
import { mkdtempSync, statSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  type AdminSocketServer,
  connectAdminSocket,
  DEFAULT_LIMITS,
  serveAdminSocket,
} from '../../src/storage/admin-socket.ts';
import type { Database } from '../../src/storage/database.ts';
import { openPglite } from '../../src/storage/pglite.ts';
import { backend } from '../support/db.ts';

/**
 * The admin socket (src/storage/admin-socket.ts) hands the server's embedded database to `opencis` commands. Whoever
 * can connect is the operator; what else might be sent there — garbage, a huge frame, a second command, a command that
 * never finishes its transaction — must be refused without harm to the server or its database.
 */
let db: Database;
let admin: AdminSocketServer;
const path = join(mkdtempSync(join(tmpdir(), 'opencis-sock-')), 'opencis.sock');
const identity = { version: 'test', migrations: 20 };
const warnings: string[] = [];

before(async () => {
  db = await openPglite();
  await db.exec('CREATE TABLE t (id int PRIMARY KEY, at timestamptz, data bytea, big int8)');
  admin = await serveAdminSocket(
    db,
    path,
    identity,
    { info: () => {}, warn: (m) => warnings.push(m) },
    { ...DEFAULT_LIMITS, maxFrameBytes: 64 * 1024, transactionIdleMs: 400 },
  );
});
after(async () => {
  await admin?.close();
  await db?.close();
});

/** Sends raw bytes; resolves with what the server answered before it closed the connection. */
function raw(bytes: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = createConnection(path);
    let got = Buffer.alloc(0);
    s.on('data', (d) => {
      got = Buffer.concat([got, d]);
    });
    s.on('error', reject);
    s.on('close', () => resolve(got.subarray(4).toString('utf8')));
    s.on('connect', () => s.write(bytes));
  });
}

function frame(json: string): Buffer {
  const body = Buffer.from(json);
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length);
  return Buffer.concat([head, body]);
}

/** The server still serves a well-behaved command after whatever came before. */
async function stillServes(): Promise<void> {
  const c = await connectAdminSocket(path, identity);
  assert.ok(c);
  assert.deepEqual((await c.query<{ n: number }>('SELECT 1 AS n')).rows, [{ n: 1 }]);
  await c.close();
}

test(`[${backend}] the socket is the server user's alone (mode 0600)`, () => {
  const st = statSync(path);
  assert.ok(st.isSocket());
  assert.equal(st.mode & 0o777, 0o600);
  assert.equal(st.uid, process.getuid!());
});

test(`[${backend}] garbage, a frame that is not a request, and a statement before hello are refused and the connection closed`, async () => {
  assert.match(await raw(frame('{not json')), /request\.invalid/);
  assert.match(await raw(frame('{"op":"drop everything","id":1}')), /request\.invalid/);
  assert.match(await raw(frame('{"op":"query","id":1,"sql":"DELETE FROM t"}')), /statement before hello/);
  assert.match(await raw(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')), /request\.too_large|request\.invalid/);
  await stillServes();
});

test(`[${backend}] a huge frame is refused from its length alone, before it is read`, async () => {
  const head = Buffer.alloc(4);
  head.writeUInt32BE(0xffffffff);
  assert.match(await raw(head), /request\.too_large/);
  assert.match(await raw(frame(`{"op":"query","id":1,"sql":"${'x'.repeat(70 * 1024)}"}`)), /request\.too_large/);
  await stillServes();
});

test(`[${backend}] another version of the code is refused (it would run other migrations)`, async () => {
  await assert.rejects(connectAdminSocket(path, { ...identity, migrations: 21 }), {
    code: 'service.admin_version_mismatch',
  });
  await stillServes();
});

test(`[${backend}] a second command while one is connected is refused; the first carries on`, async () => {
  const first = await connectAdminSocket(path, identity);
  assert.ok(first);
  await assert.rejects(connectAdminSocket(path, identity), { code: 'service.admin_socket_busy' });
  assert.equal((await first.query('SELECT 1')).rowCount, 1);
  await first.close();
  await stillServes();
});

test(`[${backend}] values keep their types, and PostgreSQL's error fields reach the command (unique violations…)`, async () => {
  const c = (await connectAdminSocket(path, identity))!;
  try {
    const at = new Date('2026-11-26T09:00:00.123Z');
    await c.query('INSERT INTO t (id, at, data, big) VALUES ($1, $2, $3, $4)', [
      1,
      at,
      new Uint8Array([0, 1, 255]),
      '9007199254740993',
    ]);
    const { rows } = await c.query<{ at: Date; data: Uint8Array; big: string }>('SELECT at, data, big FROM t');
    assert.ok(rows[0]!.at instanceof Date && rows[0]!.at.getTime() === at.getTime());
    assert.deepEqual([...rows[0]!.data], [0, 1, 255]);
    assert.equal(rows[0]!.big, '9007199254740993');
    await assert.rejects(c.query('INSERT INTO t (id) VALUES (1)'), { code: '23505', constraint: 't_pkey' });
  } finally {
    await c.close();
  }
});

test(`[${backend}] a transaction is the command's: rolled back if it fails, if the command goes away, or if it goes idle`, async () => {
  const c = (await connectAdminSocket(path, identity))!;
  await assert.rejects(
    c.transaction(async (tx) => {
      await tx.query('INSERT INTO t (id) VALUES (2)');
      throw new Error('the command failed');
    }),
    /the command failed/,
  );
  assert.equal((await c.transaction((tx) => tx.query('SELECT 1 FROM t WHERE id = 2'))).rowCount, 0);
  // Idle inside a transaction past the limit: rolled back, connection closed, the server's own queries go on.
  await assert.rejects(
    c.transaction(async (tx) => {
      await tx.query('INSERT INTO t (id) VALUES (3)');
      await new Promise((r) => setTimeout(r, 1_000));
      await tx.query('SELECT 1');
    }),
  );
  assert.equal((await db.query('SELECT 1 FROM t WHERE id = 3')).rowCount, 0);
  assert.ok(warnings.some((w) => /transaction idle/.test(w)));
  // A command killed in the middle of a transaction.
  const d = (await connectAdminSocket(path, identity))!;
  let started!: () => void;
  const inside = new Promise<void>((r) => {
    started = r;
  });
  const abandoned = d
    .transaction(async (tx) => {
      await tx.query('INSERT INTO t (id) VALUES (4)');
      started();
      await new Promise(() => {});
    })
    .catch(() => {});
  await inside;
  await d.close();
  await Promise.race([abandoned, new Promise((r) => setTimeout(r, 100))]);
  assert.equal((await db.query('SELECT 1 FROM t WHERE id = 4')).rowCount, 0);
  await stillServes();
});
