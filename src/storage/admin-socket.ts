import { chmodSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Socket } from 'node:net';
import { z } from 'zod';
import { AppError, type ErrorCode, isErrorCode } from '../domain/errors.ts';
import type { Database, Queryable, QueryResult } from './database.ts';

/**
 * The embedded database (PGlite) belongs to one process: the running server holds DATA_DIR's lock, so an `opencis`
 * command started beside it cannot open the database. The server therefore lends its database to such commands
 * through a Unix socket in DATA_DIR (mode 0600, owned by the server's user): the command runs exactly as it would
 * on its own — its own arguments, files, stdin, output and exit code, its operator actor (`cli:user@host`) in the
 * audit trail, its own secrets key — and only its SQL goes to the server, which runs it on its connection. This is
 * how every command already works against PostgreSQL, where the command is another process on a shared database:
 * what it writes, the running server sees at once (or, for what the server caches, as another node would).
 *
 * Who may connect is who may read the data directory (the socket file's mode and owner): the same person who could
 * open the database with the server stopped. One command at a time; a transaction left idle is rolled back and the
 * connection closed, so a stuck command cannot hold the server's only connection.
 */
export const ADMIN_SOCKET_NAME = 'opencis.sock';

export interface AdminSocketLimits {
  /** Largest frame accepted (a statement with its parameters). */
  maxFrameBytes: number;
  /** A transaction with no statement for this long is rolled back and the connection closed. */
  transactionIdleMs: number;
  /** A connection with nothing sent for this long is closed. */
  connectionIdleMs: number;
}

export const DEFAULT_LIMITS: AdminSocketLimits = {
  maxFrameBytes: 32 * 1024 * 1024,
  transactionIdleMs: 30_000,
  connectionIdleMs: 10 * 60_000,
};

/** What both ends must agree on: the same code, the same migrations. */
export interface AdminSocketIdentity {
  version: string;
  migrations: number;
}

// ---------------------------------------------------------------------------------------------------------------------
// Frames: a 4-byte big-endian length, then that many bytes of JSON. Dates, bytes and bigints keep their types.

const TAG = '\u0000type';

function encode(message: unknown): Buffer {
  const json = JSON.stringify(message, function replacer(this: Record<string, unknown>, key: string, value: unknown) {
    const raw = this[key];
    if (raw instanceof Date) return { [TAG]: 'date', v: raw.toISOString() };
    if (raw instanceof Uint8Array) return { [TAG]: 'bytes', v: Buffer.from(raw).toString('base64') };
    if (typeof raw === 'bigint') return { [TAG]: 'bigint', v: raw.toString() };
    return value;
  });
  const body = Buffer.from(json, 'utf8');
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length);
  return Buffer.concat([head, body]);
}

function decode(body: Buffer): unknown {
  return JSON.parse(body.toString('utf8'), (_key, value: unknown) => {
    if (value === null || typeof value !== 'object' || !(TAG in value)) return value;
    const { [TAG]: type, v } = value as Record<string, unknown>;
    if (typeof v !== 'string') throw new Error('bad tagged value');
    if (type === 'date') return new Date(v);
    if (type === 'bytes') return new Uint8Array(Buffer.from(v, 'base64'));
    if (type === 'bigint') return BigInt(v);
    throw new Error('bad tagged value');
  });
}

class FrameTooLarge extends Error {}

/** Splits a byte stream into frames; refuses (throws) a frame over the limit before buffering it. */
function frameReader(maxFrameBytes: number) {
  let buffered: Buffer = Buffer.alloc(0);
  return (chunk: Buffer): Buffer[] => {
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
    const frames: Buffer[] = [];
    for (;;) {
      if (buffered.length < 4) return frames;
      const length = buffered.readUInt32BE(0);
      if (length > maxFrameBytes) throw new FrameTooLarge(`frame of ${length} bytes is over ${maxFrameBytes}`);
      if (buffered.length < 4 + length) return frames;
      frames.push(buffered.subarray(4, 4 + length));
      buffered = buffered.subarray(4 + length);
    }
  };
}

// ---------------------------------------------------------------------------------------------------------------------
// Messages.

const id = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const requestSchema = z.discriminatedUnion('op', [
  z.object({ op: z.literal('hello'), id, version: z.string().max(100), migrations: z.number().int().min(0) }),
  z.object({
    op: z.literal('query'),
    id,
    sql: z.string().min(1),
    params: z.array(z.unknown()).max(65_535).optional(),
    tx: id.optional(),
  }),
  z.object({ op: z.literal('exec'), id, sql: z.string().min(1) }),
  z.object({ op: z.literal('begin'), id }),
  z.object({ op: z.literal('commit'), id, tx: id }),
  z.object({ op: z.literal('rollback'), id, tx: id }),
]);
type Request = z.infer<typeof requestSchema>;

interface WireError {
  message: string;
  appCode?: string;
  details?: unknown;
  /** PostgreSQL's fields, which services look at (pgErrorCode, pgConstraint). */
  code?: string;
  constraint?: string;
  detail?: string;
  table?: string;
  column?: string;
}

type Reply =
  | { id: number; ok: true; rows?: unknown[]; rowCount?: number; tx?: number }
  | { id: number; ok: false; error: WireError };

function wireError(err: unknown): WireError {
  if (err instanceof AppError) return { message: err.message, appCode: err.code, details: err.details };
  const e = err as Record<string, unknown>;
  const pick = (k: string) => (typeof e?.[k] === 'string' ? (e[k] as string) : undefined);
  return {
    message: err instanceof Error ? err.message : String(err),
    code: pick('code'),
    constraint: pick('constraint'),
    detail: pick('detail'),
    table: pick('table'),
    column: pick('column'),
  };
}

function fromWire(w: WireError): Error {
  if (w.appCode && isErrorCode(w.appCode)) return new AppError(w.appCode as ErrorCode, w.details, w.message);
  const err = new Error(w.message);
  for (const k of ['code', 'constraint', 'detail', 'table', 'column'] as const) {
    if (w[k] !== undefined) Object.assign(err, { [k]: w[k] });
  }
  return err;
}

// ---------------------------------------------------------------------------------------------------------------------
// The server side: lends `db` on a socket at `path`.

export interface AdminSocketEvents {
  info(message: string, data?: Record<string, unknown>): void;
  warn(message: string, data?: Record<string, unknown>): void;
}

export interface AdminSocketServer {
  path: string;
  close(): Promise<void>;
}

export async function serveAdminSocket(
  db: Database,
  path: string,
  identity: AdminSocketIdentity,
  events: AdminSocketEvents,
  limits: AdminSocketLimits = DEFAULT_LIMITS,
): Promise<AdminSocketServer> {
  // A socket left by a server that died: this process holds the data directory's lock now.
  rmSync(path, { force: true });
  let active: Socket | null = null;
  const connections = new Set<Socket>();
  const server = createServer((socket) => {
    connections.add(socket);
    socket.on('close', () => connections.delete(socket));
    socket.on('error', () => {});
    if (active) {
      events.warn('admin socket: a second command refused while one is connected');
      refuse(socket, 'service.admin_socket_busy');
      return;
    }
    active = socket;
    // Released as soon as the connection is refused or closed, so the next command is not turned away as "busy".
    const release = () => {
      if (active === socket) active = null;
    };
    socket.on('end', release); // the command has closed its side: it is done
    socket.on('close', release);
    serveConnection(db, socket, identity, events, limits, release);
  });
  server.maxConnections = 8;
  // Created 0600 from the start (umask), then made sure of: no moment at which another user could connect.
  const umask = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } finally {
    process.umask(umask);
  }
  chmodSync(path, 0o600);
  events.info('admin socket listening', { path });
  return {
    path,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const c of connections) c.destroy();
      });
      rmSync(path, { force: true });
    },
  };
}

function refuse(socket: Socket, code: ErrorCode, details?: unknown): void {
  const reply: Reply = { id: 0, ok: false, error: wireError(new AppError(code, details)) };
  socket.end(encode(reply));
}

interface OpenTransaction {
  tx: Queryable;
  finish(commit: boolean): void;
  /** Settles when the transaction has committed or rolled back. */
  done: Promise<void>;
  timer: NodeJS.Timeout;
}

function serveConnection(
  db: Database,
  socket: Socket,
  identity: AdminSocketIdentity,
  events: AdminSocketEvents,
  limits: AdminSocketLimits,
  release: () => void,
): void {
  const read = frameReader(limits.maxFrameBytes);
  const transactions = new Map<number, OpenTransaction>();
  let greeted = false;
  let nextTx = 1;
  let closed = false;
  const stats = { statements: 0 };

  const send = (reply: Reply) => {
    if (!closed) socket.write(encode(reply));
  };
  const drop = (code: ErrorCode, why: string) => {
    if (closed) return;
    events.warn(`admin socket: connection closed (${why})`);
    refuse(socket, code, { reason: why });
    closed = true;
    release();
    for (const t of transactions.values()) t.finish(false);
  };
  socket.setTimeout(limits.connectionIdleMs, () => drop('request.timeout', 'idle'));
  socket.on('close', () => {
    closed = true;
    for (const t of transactions.values()) t.finish(false);
    if (greeted) events.info('admin socket: command finished', stats);
  });

  const touch = (t: OpenTransaction) => {
    t.timer.refresh();
  };

  /**
   * Opens a transaction on the server's database that stays open, holding the connection, until the command commits
   * or rolls it back, goes idle, or goes away. Resolves with its id once it has begun.
   */
  const begin = (): Promise<number> =>
    new Promise((ready, fail) => {
      const txId = nextTx++;
      let started = false;
      let settle: (commit: boolean) => void = () => {};
      const body = (tx: Queryable) =>
        new Promise<void>((commit, rollback) => {
          started = true;
          const timer = setTimeout(() => {
            drop('request.timeout', `transaction idle for ${limits.transactionIdleMs} ms`);
          }, limits.transactionIdleMs);
          settle = (yes) => {
            clearTimeout(timer);
            if (yes) commit();
            else rollback(new Error('rolled back by the command'));
          };
          transactions.set(txId, { tx, timer, done, finish: (yes) => settle(yes) });
          if (closed) settle(false);
          else ready(txId);
        });
      const done: Promise<void> = Promise.resolve()
        .then(() => db.transaction(body))
        .finally(() => transactions.delete(txId));
      done.catch((err: unknown) => {
        if (!started) fail(err);
      });
    });

  const handle = async (req: Request): Promise<Reply> => {
    if (req.op === 'hello') {
      if (req.version !== identity.version || req.migrations !== identity.migrations) {
        throw new AppError('service.admin_version_mismatch', {
          server: identity,
          command: { version: req.version, migrations: req.migrations },
        });
      }
      greeted = true;
      events.info('admin socket: command connected');
      return { id: req.id, ok: true };
    }
    stats.statements++;
    switch (req.op) {
      case 'query': {
        if (req.tx === undefined) {
          const res = await db.query(req.sql, req.params);
          return { id: req.id, ok: true, rows: res.rows, rowCount: res.rowCount };
        }
        const t = transactions.get(req.tx);
        if (!t) throw new AppError('request.invalid', { reason: 'no such transaction' });
        touch(t);
        const res: QueryResult<unknown> = await t.tx.query(req.sql, req.params);
        touch(t);
        return { id: req.id, ok: true, rows: res.rows, rowCount: res.rowCount };
      }
      case 'exec':
        await db.exec(req.sql);
        return { id: req.id, ok: true };
      case 'begin':
        return { id: req.id, ok: true, tx: await begin() };
      case 'commit':
      case 'rollback': {
        const t = transactions.get(req.tx);
        if (!t) throw new AppError('request.invalid', { reason: 'no such transaction' });
        t.finish(req.op === 'commit');
        try {
          await t.done;
        } catch (err) {
          if (req.op === 'commit') throw err;
        }
        return { id: req.id, ok: true };
      }
    }
  };

  socket.on('data', (chunk: Buffer) => {
    let frames: Buffer[];
    try {
      frames = read(chunk);
    } catch (err) {
      drop('request.too_large', (err as Error).message);
      return;
    }
    for (const frame of frames) {
      let req: Request;
      try {
        const parsed = requestSchema.safeParse(decode(frame));
        if (!parsed.success) throw new Error('not a request');
        req = parsed.data;
      } catch {
        drop('request.invalid', 'a frame that is not a request');
        return;
      }
      if (!greeted && req.op !== 'hello') {
        drop('request.invalid', 'a statement before hello');
        return;
      }
      handle(req).then(send, (err: unknown) => {
        send({ id: req.id, ok: false, error: wireError(err) });
        if (req.op === 'hello') drop('service.admin_version_mismatch', 'another version');
      });
    }
  });
}

// ---------------------------------------------------------------------------------------------------------------------
// The command side: a Database whose statements run in the server.

/** Connects to the running server's socket; null when nobody is listening there (no server, or a stale file). */
export async function connectAdminSocket(path: string, identity: AdminSocketIdentity): Promise<Database | null> {
  const socket = await new Promise<Socket | null>((resolve) => {
    const s = createConnection(path);
    s.once('connect', () => resolve(s));
    s.once('error', () => resolve(null));
  });
  if (!socket) return null;
  // Replies come from the server: a page of audit events can be large, but never this large.
  const read = frameReader(512 * 1024 * 1024);
  const pending = new Map<number, { resolve(r: Reply & { ok: true }): void; reject(e: Error): void }>();
  let nextId = 1;
  let lost: Error | null = null;
  const fail = (err: Error) => {
    lost ??= err;
    for (const p of pending.values()) p.reject(lost);
    pending.clear();
  };
  socket.on('data', (chunk: Buffer) => {
    let frames: Buffer[];
    try {
      frames = read(chunk);
    } catch (err) {
      socket.destroy();
      fail(err as Error);
      return;
    }
    for (const frame of frames) {
      const reply = decode(frame) as Reply;
      // id 0: the server refused the connection (busy, another version, a protocol error).
      if (reply.id === 0 && !reply.ok) {
        fail(fromWire(reply.error));
        continue;
      }
      const p = pending.get(reply.id);
      pending.delete(reply.id);
      if (!p) continue;
      if (reply.ok) p.resolve(reply);
      else p.reject(fromWire(reply.error));
    }
  });
  socket.on('error', (err) => fail(err));
  socket.on('close', () =>
    fail(new AppError('service.unavailable', { reason: 'the OpenCIS server closed the admin socket' })),
  );

  const call = (req: Record<string, unknown>) =>
    new Promise<Reply & { ok: true }>((resolve, reject) => {
      if (lost) return reject(lost);
      const requestId = nextId++;
      pending.set(requestId, { resolve, reject });
      socket.write(encode({ ...req, id: requestId }));
    });
  const queryIn =
    (tx: number | undefined): Queryable['query'] =>
    async <R>(sql: string, params?: readonly unknown[]) => {
      const reply = await call({ op: 'query', sql, params: params ? [...params] : undefined, tx });
      return { rows: (reply.rows ?? []) as R[], rowCount: reply.rowCount ?? 0 };
    };

  try {
    await call({ op: 'hello', ...identity });
  } catch (err) {
    socket.destroy();
    throw err;
  }
  return {
    kind: 'pglite',
    query: queryIn(undefined),
    async exec(sql) {
      await call({ op: 'exec', sql });
    },
    async transaction(fn) {
      const { tx } = await call({ op: 'begin' });
      let result: Awaited<ReturnType<typeof fn>>;
      try {
        result = await fn({ query: queryIn(tx) });
      } catch (err) {
        await call({ op: 'rollback', tx }).catch(() => {});
        throw err;
      }
      await call({ op: 'commit', tx });
      return result;
    },
    async close() {
      // Until the server has closed its side too: it has then let the connection go, and the next command is welcome.
      await new Promise<void>((resolve) => {
        if (socket.closed) return resolve();
        socket.once('close', () => resolve());
        socket.end();
        setTimeout(resolve, 2_000).unref();
      });
      socket.destroy();
    },
  };
}
