import type { Redis } from 'ioredis';
import { type Adapter, errors } from 'oidc-provider';
import { consumableLabel, type Payload, payloadOf, READ_TOGETHER } from './adapter-payload.ts';
import {
  currentRequest,
  deferConsume,
  dropRows,
  leaveRow,
  rowKey,
  type TogetherRow,
  takeDeferredConsume,
  takeRow,
} from './read-together.ts';

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
  const grantKey = (id: string) => `${prefix}grant:${id}`;
  async function revokeGrant(grantId: string): Promise<void> {
    const keys = await redis.lrange(grantKey(grantId), 0, -1);
    if (keys.length > 0) await redis.del(...keys, ...keys.map((k) => `${k}:consumed`));
    await redis.del(grantKey(grantId));
  }
  return (model: string) => {
    const key = (id: string) => `${prefix}${model}:${id}`;
    async function consumeNow(id: string): Promise<void> {
      const k = key(id);
      const won = await redis.eval(CONSUME_SCRIPT, 2, k, `${k}:consumed`, String(Math.floor(Date.now() / 1000)));
      if (won === 1) return;
      const raw = await redis.get(k);
      const grantId = raw ? (JSON.parse(raw) as Payload).grantId : undefined;
      if (grantId) await revokeGrant(grantId);
      throw new errors.InvalidGrant(`${consumableLabel(model)} already consumed`);
    }
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
        //
        // In a request of the provider the use is recorded when the request ends (provider.ts), after the tokens it
        // gives are written and before they are sent: a request that fails on the way — PostgreSQL lost while the ID
        // token's claims are read — has given nothing, so its relying party's retry is a refresh, not a replay. The
        // request that loses the race has its answer replaced by invalid_grant, and the tokens it wrote go with the
        // grant.
        dropRows(currentRequest());
        const ctx = currentRequest();
        if (ctx) {
          await deferConsume(ctx, { model, id, now: () => consumeNow(id) });
          return;
        }
        await consumeNow(id);
      },
      async destroy(id: string) {
        await takeDeferredConsume(currentRequest())?.now();
        dropRows(currentRequest());
        await redis.del(key(id), `${key(id)}:consumed`);
      },
      async revokeByGrantId(grantId: string) {
        await takeDeferredConsume(currentRequest())?.now();
        dropRows(currentRequest());
        await revokeGrant(grantId);
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
