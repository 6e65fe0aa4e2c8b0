import type { Redis } from 'ioredis';
import { type Adapter, type AdapterPayload, errors } from 'oidc-provider';
import { ukDate } from '../domain/dates.ts';
import type { Database } from '../storage/database.ts';
import {
  type ClaimsUse,
  claimsUseOf,
  currentRequest,
  deferConsume,
  dropRows,
  leaveClaims,
  leaveRow,
  rowKey,
  type TogetherRow,
  takeDeferredConsume,
  takeRow,
} from './read-together.ts';

/**
 * Storage for oidc-provider's artefacts. PostgreSQL by default (durable: a node restart loses no session); Redis when
 * REDIS_URL is set, so several nodes share sessions with low latency. Both implement the library's adapter contract:
 * upsert/find/findByUid/findByUserCode/consume/destroy/revokeByGrantId. 'Client' is not stored here (see clients.ts).
 */
type Payload = AdapterPayload & { accountId?: string };

/** Tokens and codes whose find reads their grant, session and claims with them (see read-together.ts). */
const READ_TOGETHER = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken']);

/**
 * @param ukDay the UK date now (YYYY-MM-DD), as the claims are built for it: the claims read together with a token are
 * used only for the same day.
 */
export function postgresAdapterFactory(
  db: Database,
  ukDay: () => string = () => ukDate(new Date()),
): (name: string) => Adapter {
  const memory = db.kind === 'pglite' ? writtenArtefactsOf(db) : null;
  return (model: string) => {
    const adapter: Adapter = {
      async upsert(id: string, payload: Payload, expiresIn: number) {
        const ctx = currentRequest();
        dropRows(ctx);
        const expiresAt = expiresIn ? new Date(Date.now() + expiresIn * 1000) : null;
        const json = JSON.stringify(payload);
        memory?.forget(model, id);
        const values = [
          model,
          id,
          json,
          payload.grantId ?? null,
          payload.userCode ?? null,
          payload.uid ?? null,
          payload.accountId ?? null,
          expiresAt,
        ];
        const deferred = takeDeferredConsume(ctx);
        let rows: { consumed_at: Date | null }[];
        if (deferred) {
          // The code (or refresh token) this request used, recorded in the same statement as the token it gives: written
          // only if this statement is the one that marked it used, so of two requests racing with one code exactly one
          // writes a token; the other is refused as a replay, as consume() below would refuse it.
          const used = await db.query<{ consumed_at: Date | null }>(
            `WITH used AS (
               UPDATE oidc_payloads SET consumed_at = now()
               WHERE model = $9::text AND id = $10::text AND consumed_at IS NULL RETURNING 1
             )
             INSERT INTO oidc_payloads (model, id, payload, grant_id, user_code, uid, account_id, expires_at)
             SELECT $1::text, $2::text, $3::jsonb, $4::text, $5::text, $6::text, $7::text, $8::timestamptz
             WHERE EXISTS (SELECT 1 FROM used)
             ON CONFLICT (model, id) DO UPDATE SET payload = EXCLUDED.payload, grant_id = EXCLUDED.grant_id,
               user_code = EXCLUDED.user_code, uid = EXCLUDED.uid, account_id = EXCLUDED.account_id, expires_at = EXCLUDED.expires_at
             RETURNING consumed_at`,
            [...values, deferred.model, deferred.id],
          );
          if (used.rows.length !== 1) {
            memory?.forget(deferred.model, deferred.id);
            await refuseReplay(db, deferred.model, deferred.id, (grantId) => adapter.revokeByGrantId(grantId));
          }
          memory?.consumed(deferred.model, deferred.id, Math.floor(Date.now() / 1000));
          rows = used.rows;
        } else {
          ({ rows } = await db.query<{ consumed_at: Date | null }>(
            `INSERT INTO oidc_payloads (model, id, payload, grant_id, user_code, uid, account_id, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (model, id) DO UPDATE SET payload = EXCLUDED.payload, grant_id = EXCLUDED.grant_id,
               user_code = EXCLUDED.user_code, uid = EXCLUDED.uid, account_id = EXCLUDED.account_id, expires_at = EXCLUDED.expires_at
             RETURNING consumed_at`,
            values,
          ));
        }
        memory?.remember(model, id, {
          json,
          grantId: payload.grantId ?? null,
          uid: payload.uid ?? null,
          expiresAt: expiresAt?.getTime() ?? null,
          consumed: consumedSeconds(rows[0]?.consumed_at ?? null),
        });
      },
      async find(id: string) {
        if (memory) return memory.find(model, id) ?? findWhere(db, model, 'id = $2', id);
        const ctx = currentRequest();
        const known = takeRow(ctx, rowKey.id(model, id));
        if (known) return payloadOf(known);
        if (ctx && READ_TOGETHER.has(model)) return readTogether(db, ctx, model, id, ukDay());
        return findWhere(db, model, 'id = $2', id);
      },
      async findByUid(uid: string) {
        if (memory) return memory.findByUid(model, uid) ?? findWhere(db, model, 'uid = $2', uid);
        const known = takeRow(currentRequest(), rowKey.uid(model, uid));
        if (known) return payloadOf(known);
        return findWhere(db, model, 'uid = $2', uid);
      },
      async findByUserCode(userCode: string) {
        return findWhere(db, model, 'user_code = $2', userCode);
      },
      // Single use, atomically: of two requests racing with one code (or refresh token), only the one whose UPDATE marks
      // it consumed goes on; the other is refused as a replay and, as RFC 6749 §4.1.2 asks, the grant is revoked — the
      // library's own check (`consumed` on the artefact it read) cannot see a use that happened after that read.
      async consume(id: string) {
        const ctx = currentRequest();
        dropRows(ctx);
        // In a request of the provider, the use is recorded with the token the request writes next (the library writes
        // the access token straight after), in one statement and one commit; what the request does not follow with a
        // write is recorded when it ends (provider.ts). Outside a request it is recorded now.
        if (ctx) {
          await deferConsume(ctx, { model, id, now: () => consumeNow(id) });
          return;
        }
        await consumeNow(id);
      },
      // Forgotten before and after the delete: a write of the same artefact that finished in between is not kept.
      async destroy(id: string) {
        await takeDeferredConsume(currentRequest())?.now();
        dropRows(currentRequest());
        memory?.forget(model, id);
        try {
          await db.query('DELETE FROM oidc_payloads WHERE model = $1 AND id = $2', [model, id]);
        } finally {
          memory?.forget(model, id);
        }
      },
      async revokeByGrantId(grantId: string) {
        await takeDeferredConsume(currentRequest())?.now();
        dropRows(currentRequest());
        memory?.forgetGrant(grantId);
        try {
          await db.query('DELETE FROM oidc_payloads WHERE grant_id = $1', [grantId]);
        } finally {
          memory?.forgetGrant(grantId);
        }
      },
    };

    async function consumeNow(id: string): Promise<void> {
      let won = false;
      try {
        const { rows } = await db.query<{ consumed_at: Date }>(
          `UPDATE oidc_payloads SET consumed_at = now()
             WHERE model = $1 AND id = $2 AND consumed_at IS NULL RETURNING consumed_at`,
          [model, id],
        );
        won = rows.length === 1;
        if (rows[0]) memory?.consumed(model, id, consumedSeconds(rows[0].consumed_at) ?? Math.floor(Date.now() / 1000));
        else memory?.forget(model, id);
      } catch (err) {
        memory?.forget(model, id);
        throw err;
      }
      if (won) return;
      await refuseReplay(db, model, id, (grantId) => adapter.revokeByGrantId(grantId));
    }

    return adapter;
  };
}

/**
 * A code (or refresh token) used already: as RFC 6749 §4.1.2 asks, its grant is revoked (every token it gave), and the
 * request is refused as the library refuses a replay.
 */
async function refuseReplay(
  db: Database,
  model: string,
  id: string,
  revoke: (grantId: string) => Promise<unknown>,
): Promise<never> {
  const { rows } = await db.query<{ grant_id: string | null }>(
    'SELECT grant_id FROM oidc_payloads WHERE model = $1 AND id = $2',
    [model, id],
  );
  const grantId = rows[0]?.grant_id;
  if (grantId) await revoke(grantId);
  throw new errors.InvalidGrant(`${consumableLabel(model)} already consumed`);
}

/** How the library names a consumable artefact in its own "already consumed" errors. */
function consumableLabel(model: string): string {
  return model === 'AuthorizationCode'
    ? 'authorization code'
    : model === 'RefreshToken'
      ? 'refresh token'
      : model === 'DeviceCode'
        ? 'device code'
        : model;
}

function consumedSeconds(at: Date | string | null): number | null {
  return at ? Math.floor(new Date(at).getTime() / 1000) : null;
}

async function findWhere(db: Database, model: string, where: string, value: string): Promise<Payload | undefined> {
  const { rows } = await db.query<{ payload: Payload | string; consumed_at: Date | null; expires_at: Date | null }>(
    `SELECT payload, consumed_at, expires_at FROM oidc_payloads WHERE model = $1 AND ${where}`,
    [model, value],
  );
  const row = rows[0];
  if (!row) return undefined;
  if (row.expires_at && new Date(row.expires_at).getTime() <= Date.now()) return undefined;
  const payload = typeof row.payload === 'string' ? (JSON.parse(row.payload) as Payload) : row.payload;
  return row.consumed_at ? { ...payload, consumed: Math.floor(new Date(row.consumed_at).getTime() / 1000) } : payload;
}

/** A row as findWhere returns it: undefined when expired; `consumed` (seconds) when used. */
function payloadOf(row: TogetherRow): Payload | undefined {
  if (row.expires_at !== null && row.expires_at <= Date.now()) return undefined;
  const payload = row.payload as Payload;
  return row.consumed_at !== null ? { ...payload, consumed: Math.floor(row.consumed_at / 1000) } : payload;
}

interface Together {
  artefact: TogetherRow;
  grant: TogetherRow | null;
  session: TogetherRow | null;
  claims: unknown;
  account_id: string | null;
  grant_id: string | null;
  session_uid: string | null;
}

/**
 * Finds a token or code with, in the same statement (oidc_read_together, migration 0015), its grant, the SSO session
 * it is bound to and — at the token and userinfo endpoints — its account's claims, and leaves those on the request
 * for the library's next reads (read-together.ts).
 */
async function readTogether(
  db: Database,
  ctx: object,
  model: string,
  id: string,
  day: string,
): Promise<Payload | undefined> {
  const use: ClaimsUse | null = claimsUseOf(ctx);
  const { rows } = await db.query<{ found: Together | string | null }>(
    'SELECT oidc_read_together($1, $2, $3, $4) AS found',
    [model, id, day, use],
  );
  const raw = rows[0]?.found ?? null;
  const found = typeof raw === 'string' ? (JSON.parse(raw) as Together) : raw;
  if (!found) return undefined;
  const artefact = payloadOf(found.artefact);
  if (!artefact) return undefined;
  if (found.grant && found.grant_id) leaveRow(ctx, rowKey.id('Grant', found.grant_id), found.grant);
  if (found.session && found.session_uid) leaveRow(ctx, rowKey.uid('Session', found.session_uid), found.session);
  if (use && found.account_id) leaveClaims(ctx, found.account_id, day, found.grant_id, use, found.claims);
  return artefact;
}

interface Written {
  json: string;
  grantId: string | null;
  uid: string | null;
  /** ms since the epoch, or null: no expiry. */
  expiresAt: number | null;
  /** When it was consumed (seconds since the epoch), as the library reads `consumed`. */
  consumed: number | null;
}

/**
 * Artefacts kept at most (~1–1.5 KB each: ≤ ~40 MB); the oldest written are dropped first (a dropped one is read from
 * the database again). A sign-in writes ~4 and its access token a fifth, so this covers ~5 000 sign-ins in flight.
 */
const WRITTEN_MAX = 25_000;

/**
 * The artefacts this process wrote, kept as written — on PGlite only. PGlite is one database in one process (the data
 * directory is locked against a second one), and every change to oidc_payloads goes through this adapter, so what is
 * kept here is exactly what the table holds: an artefact consumed, destroyed or revoked is forgotten (or marked) here
 * as the database is changed, and a relying party's next call sees it at once. What is not kept here (written before a
 * restart, or dropped for room) is read from the table. Reading back what the library wrote moments earlier was most
 * of its statements (the interaction, grant, code, session and access token, each read again by the next step). On
 * PostgreSQL, where other nodes change the same rows, nothing is kept.
 */
class WrittenArtefacts {
  private readonly byKey = new Map<string, Written>();
  private readonly byUid = new Map<string, string>();
  private readonly byGrant = new Map<string, Set<string>>();
  private sweptAt = 0;

  remember(model: string, id: string, w: Written): void {
    const key = `${model}:${id}`;
    this.forget(model, id);
    if (this.byKey.size >= WRITTEN_MAX) this.dropOldest();
    this.byKey.set(key, w);
    if (w.uid) this.byUid.set(`${model}:${w.uid}`, key);
    if (w.grantId) {
      const set = this.byGrant.get(w.grantId) ?? new Set<string>();
      set.add(key);
      this.byGrant.set(w.grantId, set);
    }
  }

  find(model: string, id: string): Payload | undefined {
    return this.read(`${model}:${id}`);
  }

  findByUid(model: string, uid: string): Payload | undefined {
    const key = this.byUid.get(`${model}:${uid}`);
    return key ? this.read(key) : undefined;
  }

  consumed(model: string, id: string, at: number): void {
    const w = this.byKey.get(`${model}:${id}`);
    if (w) w.consumed = at;
  }

  forget(model: string, id: string): void {
    this.drop(`${model}:${id}`);
  }

  forgetGrant(grantId: string): void {
    for (const key of this.byGrant.get(grantId) ?? []) this.drop(key);
    this.byGrant.delete(grantId);
  }

  /** A kept artefact, as findWhere would read it; undefined when not kept (the caller reads the table). */
  private read(key: string): Payload | undefined {
    const w = this.byKey.get(key);
    if (!w) return undefined;
    // Expired: read the table, which answers "not found" the same way.
    if (w.expiresAt !== null && w.expiresAt <= Date.now()) {
      this.drop(key);
      return undefined;
    }
    const payload = JSON.parse(w.json) as Payload;
    return w.consumed !== null ? { ...payload, consumed: w.consumed } : payload;
  }

  private drop(key: string): void {
    const w = this.byKey.get(key);
    if (!w) return;
    this.byKey.delete(key);
    const model = key.slice(0, key.indexOf(':'));
    if (w.uid && this.byUid.get(`${model}:${w.uid}`) === key) this.byUid.delete(`${model}:${w.uid}`);
    if (w.grantId) {
      const set = this.byGrant.get(w.grantId);
      set?.delete(key);
      if (set?.size === 0) this.byGrant.delete(w.grantId);
    }
  }

  private dropOldest(): void {
    // Sweeping out the expired walks every entry: at most once a second, not at every write once full (that made each
    // write cost a walk of the whole map under load).
    const now = Date.now();
    if (now - this.sweptAt >= 1_000) {
      this.sweptAt = now;
      for (const [key, w] of this.byKey) {
        if (w.expiresAt !== null && w.expiresAt <= now) this.drop(key);
      }
    }
    while (this.byKey.size >= WRITTEN_MAX) {
      const oldest = this.byKey.keys().next().value;
      if (oldest === undefined) break;
      this.drop(oldest);
    }
  }
}

/** One per database, shared by every adapter (and provider) on it in this process. */
const writtenByDatabase = new WeakMap<Database, WrittenArtefacts>();

function writtenArtefactsOf(db: Database): WrittenArtefacts {
  let w = writtenByDatabase.get(db);
  if (!w) {
    w = new WrittenArtefacts();
    writtenByDatabase.set(db, w);
  }
  return w;
}

/** Deletes expired artefacts (run by the scheduler; the queries above already ignore them). */
export async function purgeExpiredPayloads(db: Database): Promise<number> {
  const { rowCount } = await db.query('DELETE FROM oidc_payloads WHERE expires_at < now()');
  return rowCount;
}

const GRANTABLE = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
]);

/** The artefacts the library consumes (single use): their use is recorded beside them, atomically. */
const CONSUMABLE = new Set(['AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest']);

/**
 * KEYS[1] the artefact, KEYS[2] its use marker, ARGV[1] the time. 1: this call used it; 0: used already, or gone.
 * The marker lives as long as the artefact (its TTL copied), so a replay is recognised for the artefact's whole life.
 */
const CONSUME_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if not redis.call('SET', KEYS[2], ARGV[1], 'NX') then return 0 end
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
return 1
`;

/**
 * KEYS[1] a token or code, KEYS[2] its use marker; ARGV[1] the key prefix. The token, its use, its grant and the SSO
 * session it is bound to (through the session's uid key), read atomically in one round trip. The grant and session keys
 * are derived from the token, so they cannot be declared: this needs a single Redis (or keys in one slot), as OpenCIS
 * uses it.
 */
const READ_TOGETHER_SCRIPT = `
local raw = redis.call('GET', KEYS[1])
if not raw then return false end
local consumed = redis.call('GET', KEYS[2])
local p = cjson.decode(raw)
local grant = false
local session = false
if type(p.grantId) == 'string' then grant = redis.call('GET', ARGV[1] .. 'Grant:' .. p.grantId) end
if type(p.sessionUid) == 'string' then
  local sid = redis.call('GET', ARGV[1] .. 'uid:' .. p.sessionUid)
  if sid then session = redis.call('GET', ARGV[1] .. 'Session:' .. sid) end
end
return {raw, consumed, grant, session}
`;

async function redisReadTogether(redis: Redis, ctx: object, prefix: string, k: string): Promise<Payload | undefined> {
  // ioredis adds its keyPrefix (a REDIS_URL option) to KEYS only: the keys the script derives need it too.
  const derived = `${redis.options.keyPrefix ?? ''}${prefix}`;
  const found = (await redis.eval(READ_TOGETHER_SCRIPT, 2, k, `${k}:consumed`, derived)) as
    | [string, string | null, string | null, string | null]
    | null;
  if (!found) return undefined;
  const [raw, consumed, grant, session] = found;
  const payload = JSON.parse(raw) as Payload & { sessionUid?: string };
  const row = (json: string): TogetherRow => ({ payload: JSON.parse(json), consumed_at: null, expires_at: null });
  if (grant && payload.grantId) leaveRow(ctx, rowKey.id('Grant', payload.grantId), row(grant));
  if (session && payload.sessionUid) leaveRow(ctx, rowKey.uid('Session', payload.sessionUid), row(session));
  return consumed ? { ...payload, consumed: Number(consumed) } : payload;
}

/** The Redis adapter: one key per artefact, with sets for grant, uid and user-code lookups; TTLs from the library. */
export function redisAdapterFactory(redis: Redis, prefix = 'opencis:oidc:'): (name: string) => Adapter {
  return (model: string) => {
    const key = (id: string) => `${prefix}${model}:${id}`;
    const grantKey = (id: string) => `${prefix}grant:${id}`;
    return {
      async upsert(id: string, payload: Payload, expiresIn: number) {
        dropRows(currentRequest());
        const k = key(id);
        const multi = redis.multi();
        if (expiresIn) multi.set(k, JSON.stringify(payload), 'EX', expiresIn);
        else multi.set(k, JSON.stringify(payload));
        if (GRANTABLE.has(model) && payload.grantId) {
          multi.rpush(grantKey(payload.grantId), k);
          // The grant's list lives as long as its longest-lived token: set when it has no expiry, raised when shorter
          // (in the same round trip, instead of reading its TTL first).
          if (expiresIn > 0) {
            multi.expire(grantKey(payload.grantId), expiresIn, 'NX');
            multi.expire(grantKey(payload.grantId), expiresIn, 'GT');
          }
        }
        if (model === 'Session' && payload.accountId) {
          multi.sadd(`${prefix}account:${payload.accountId}`, id);
          multi.expire(`${prefix}account:${payload.accountId}`, Math.max(expiresIn || 0, 12 * 3600));
        }
        if (payload.userCode) multi.set(`${prefix}userCode:${payload.userCode}`, id, 'EX', expiresIn || 3600);
        if (payload.uid) multi.set(`${prefix}uid:${payload.uid}`, id, 'EX', expiresIn || 3600);
        await multi.exec();
      },
      async find(id: string) {
        const ctx = currentRequest();
        const known = takeRow(ctx, rowKey.id(model, id));
        if (known) return payloadOf(known);
        const k = key(id);
        if (ctx && READ_TOGETHER.has(model)) return redisReadTogether(redis, ctx, prefix, k);
        const [raw, consumed] = CONSUMABLE.has(model)
          ? await redis.mget(k, `${k}:consumed`)
          : [await redis.get(k), null];
        if (!raw) return undefined;
        const payload = JSON.parse(raw) as Payload;
        return consumed ? { ...payload, consumed: Number(consumed) } : payload;
      },
      async findByUid(uid: string) {
        const known = takeRow(currentRequest(), rowKey.uid(model, uid));
        if (known) return payloadOf(known);
        const id = await redis.get(`${prefix}uid:${uid}`);
        return id ? this.find(id) : undefined;
      },
      async findByUserCode(userCode: string) {
        const id = await redis.get(`${prefix}userCode:${userCode}`);
        return id ? this.find(id) : undefined;
      },
      async consume(id: string) {
        // The use is a marker key set only if absent (SET NX, in a script with the existence check and its TTL), so of
        // two requests racing with one code — on any nodes, on any connection — exactly one marks it; the other finds
        // it consumed and is refused as a replay, and the grant revoked (see the PostgreSQL adapter).
        dropRows(currentRequest());
        const k = key(id);
        const won = await redis.eval(CONSUME_SCRIPT, 2, k, `${k}:consumed`, String(Math.floor(Date.now() / 1000)));
        if (won === 1) return;
        const raw = await redis.get(k);
        const grantId = raw ? (JSON.parse(raw) as Payload).grantId : undefined;
        if (grantId) await this.revokeByGrantId(grantId);
        throw new errors.InvalidGrant(`${consumableLabel(model)} already consumed`);
      },
      async destroy(id: string) {
        dropRows(currentRequest());
        await redis.del(key(id), `${key(id)}:consumed`);
      },
      async revokeByGrantId(grantId: string) {
        dropRows(currentRequest());
        const keys = await redis.lrange(grantKey(grantId), 0, -1);
        if (keys.length > 0) await redis.del(...keys, ...keys.map((k) => `${k}:consumed`));
        await redis.del(grantKey(grantId));
      },
    };
  };
}

/** Sessions of an account in Redis (for back-channel logout when OpenCIS ends them). */
export function redisSessionIndex(redis: Redis, prefix = 'opencis:oidc:') {
  return {
    async sessionsOf(accountId: string) {
      const ids = await redis.smembers(`${prefix}account:${accountId}`);
      const out: { id: string; uid?: string; authorizations: Record<string, { sid?: string; grantId?: string }> }[] =
        [];
      for (const id of ids) {
        const raw = await redis.get(`${prefix}Session:${id}`);
        if (!raw) {
          await redis.srem(`${prefix}account:${accountId}`, id);
          continue;
        }
        const p = JSON.parse(raw) as {
          uid?: string;
          accountId?: string;
          authorizations?: Record<string, { sid?: string; grantId?: string }>;
        };
        if (p.accountId === accountId) out.push({ id, uid: p.uid, authorizations: p.authorizations ?? {} });
      }
      return out;
    },
  };
}
