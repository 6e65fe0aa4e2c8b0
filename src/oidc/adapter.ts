import type { Redis } from 'ioredis';
import type { Adapter, AdapterPayload } from 'oidc-provider';
import type { Database } from '../storage/database.ts';

/**
 * Storage for oidc-provider's artefacts. PostgreSQL by default (durable: a node restart loses no session); Redis when
 * REDIS_URL is set, so several nodes share sessions with low latency. Both implement the library's adapter contract:
 * upsert/find/findByUid/findByUserCode/consume/destroy/revokeByGrantId. 'Client' is not stored here (see clients.ts).
 */
type Payload = AdapterPayload & { accountId?: string };

export function postgresAdapterFactory(db: Database): (name: string) => Adapter {
  return (model: string) => ({
    async upsert(id: string, payload: Payload, expiresIn: number) {
      await db.query(
        `INSERT INTO oidc_payloads (model, id, payload, grant_id, user_code, uid, account_id, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (model, id) DO UPDATE SET payload = EXCLUDED.payload, grant_id = EXCLUDED.grant_id,
           user_code = EXCLUDED.user_code, uid = EXCLUDED.uid, account_id = EXCLUDED.account_id, expires_at = EXCLUDED.expires_at`,
        [
          model,
          id,
          JSON.stringify(payload),
          payload.grantId ?? null,
          payload.userCode ?? null,
          payload.uid ?? null,
          payload.accountId ?? null,
          expiresIn ? new Date(Date.now() + expiresIn * 1000) : null,
        ],
      );
    },
    async find(id: string) {
      return findWhere(db, model, 'id = $2', id);
    },
    async findByUid(uid: string) {
      return findWhere(db, model, 'uid = $2', uid);
    },
    async findByUserCode(userCode: string) {
      return findWhere(db, model, 'user_code = $2', userCode);
    },
    async consume(id: string) {
      await db.query('UPDATE oidc_payloads SET consumed_at = now() WHERE model = $1 AND id = $2', [model, id]);
    },
    async destroy(id: string) {
      await db.query('DELETE FROM oidc_payloads WHERE model = $1 AND id = $2', [model, id]);
    },
    async revokeByGrantId(grantId: string) {
      await db.query('DELETE FROM oidc_payloads WHERE grant_id = $1', [grantId]);
    },
  });
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

/** The Redis adapter: one key per artefact, with sets for grant, uid and user-code lookups; TTLs from the library. */
export function redisAdapterFactory(redis: Redis, prefix = 'opencis:oidc:'): (name: string) => Adapter {
  return (model: string) => {
    const key = (id: string) => `${prefix}${model}:${id}`;
    const grantKey = (id: string) => `${prefix}grant:${id}`;
    return {
      async upsert(id: string, payload: Payload, expiresIn: number) {
        const k = key(id);
        const multi = redis.multi();
        if (expiresIn) multi.set(k, JSON.stringify(payload), 'EX', expiresIn);
        else multi.set(k, JSON.stringify(payload));
        if (GRANTABLE.has(model) && payload.grantId) {
          multi.rpush(grantKey(payload.grantId), k);
          const ttl = await redis.ttl(grantKey(payload.grantId));
          if (expiresIn > ttl) multi.expire(grantKey(payload.grantId), expiresIn);
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
        const raw = await redis.get(key(id));
        return raw ? (JSON.parse(raw) as Payload) : undefined;
      },
      async findByUid(uid: string) {
        const id = await redis.get(`${prefix}uid:${uid}`);
        return id ? this.find(id) : undefined;
      },
      async findByUserCode(userCode: string) {
        const id = await redis.get(`${prefix}userCode:${userCode}`);
        return id ? this.find(id) : undefined;
      },
      async consume(id: string) {
        // Read-modify-write under WATCH so two nodes consuming the same code cannot both see it unconsumed.
        const k = key(id);
        for (let attempt = 0; attempt < 5; attempt++) {
          await redis.watch(k);
          const raw = await redis.get(k);
          if (!raw) {
            await redis.unwatch();
            return;
          }
          const payload = JSON.parse(raw) as Payload;
          payload.consumed = Math.floor(Date.now() / 1000);
          const ttl = await redis.ttl(k);
          const multi = redis.multi();
          if (ttl > 0) multi.set(k, JSON.stringify(payload), 'EX', ttl);
          else multi.set(k, JSON.stringify(payload));
          if (await multi.exec()) return;
        }
      },
      async destroy(id: string) {
        await redis.del(key(id));
      },
      async revokeByGrantId(grantId: string) {
        const keys = await redis.lrange(grantKey(grantId), 0, -1);
        if (keys.length > 0) await redis.del(...keys);
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
