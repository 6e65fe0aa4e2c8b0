import { rotateSigningKeys } from '../../oidc/keys.ts';
import type { Queryable } from '../../storage/database.ts';
import type { Command } from '../command.ts';
import { parseOptions } from '../command.ts';
import { withOperatorContext } from '../database.ts';
import { UsageError } from '../io.ts';

/** The ID token lifetime (provider.ts ttl.IdToken): the least an old signing key must stay published. */
const ID_TOKEN_TTL = 3_600;
const MAX_OVERLAP = 30 * 86_400;

/**
 * How long old keys must stay in the JWKS after a rotation: the longest lifetime of anything they may have signed —
 * ID tokens (1 hour), or a relying party's longer access token lifetime (some keep the ID token as long as the access
 * token) — never less than an hour.
 */
export async function defaultOverlapSeconds(q: Queryable): Promise<number> {
  const { rows } = await q.query<{ ttl: number | string | null }>(
    "SELECT max((metadata->>'urn:opencis:access_token_ttl')::int) AS ttl FROM oidc_clients WHERE status = 'active'",
  );
  return Math.max(ID_TOKEN_TTL, Number(rows[0]?.ttl ?? 0));
}

interface KeyRow {
  kid: string;
  alg: string;
  status: 'active' | 'retiring' | 'retired';
  created_at: Date | string;
  retire_after: Date | string | null;
}

const iso = (d: Date | string | null) => (d === null ? '-' : new Date(d).toISOString().replace(/\.\d{3}Z$/, 'Z'));

export const oidcCommand: Command = {
  summary: 'OpenID Connect provider: rotate and list the ID token signing keys',
  help: `Usage: opencis oidc rotate-keys [--overlap SECONDS]
       opencis oidc keys [--all]

rotate-keys  makes a new signing key of each algorithm (RS256, ES256, PS256) the one ID tokens are signed with. The
             old keys stay published in the JWKS (status "retiring") for --overlap seconds, so tokens they signed
             still verify; then they are retired. Default overlap: the longest token lifetime of the registered
             relying parties, at least 3600 (the ID token lifetime). Running servers pick the new keys up within a
             minute; every node shares them through the database.
keys         the signing keys: kid, algorithm, status (active, retiring until…), created. --all includes retired ones.

Exit codes: 0 done, 1 failed, 2 usage error.`,
  async run(args, io) {
    const { values, positionals } = parseOptions(
      args,
      { overlap: { type: 'string' }, all: { type: 'boolean', default: false } },
      1,
    );
    const [verb] = positionals;
    switch (verb) {
      case 'rotate-keys': {
        if (values.all) throw new UsageError('--all is for "keys"');
        let overlap: number | undefined;
        if (values.overlap !== undefined) {
          if (!/^[0-9]{1,8}$/.test(values.overlap) || Number(values.overlap) > MAX_OVERLAP) {
            throw new UsageError(`--overlap is a whole number of seconds, at most ${MAX_OVERLAP}`);
          }
          overlap = Number(values.overlap);
        }
        const res = await withOperatorContext(async (ctx) => {
          const seconds = overlap ?? (await defaultOverlapSeconds(ctx.db));
          return { ...(await rotateSigningKeys(ctx, seconds)), seconds, at: ctx.clock.now() };
        });
        const until = new Date(res.at.getTime() + res.seconds * 1000);
        io.out(`active    ${res.active.join(' ')}`);
        io.out(
          res.retiring.length > 0
            ? `retiring  ${res.retiring.join(' ')} (published until ${iso(until)}, ${res.seconds} s)`
            : 'retiring  none',
        );
        io.out('Running servers sign with the new keys within a minute.');
        if (overlap !== undefined && overlap < ID_TOKEN_TTL) {
          io.err(`Warning: an overlap under ${ID_TOKEN_TTL} s can leave unexpired ID tokens unverifiable.`);
        }
        return 0;
      }
      case 'keys': {
        if (values.overlap !== undefined) throw new UsageError('--overlap is for "rotate-keys"');
        const rows = await withOperatorContext(async (ctx) => {
          const res = await ctx.db.query<KeyRow>(
            `SELECT kid, alg, status, created_at, retire_after FROM oidc_signing_keys
             WHERE $1 OR status <> 'retired'
             ORDER BY CASE status WHEN 'active' THEN 0 WHEN 'retiring' THEN 1 ELSE 2 END, created_at DESC, alg`,
            [values.all],
          );
          return res.rows;
        });
        if (rows.length === 0) io.out('no signing keys (the server makes them at its first start)');
        for (const r of rows) {
          const status = r.status === 'retiring' ? `retiring until ${iso(r.retire_after)}` : r.status;
          io.out(`${r.kid}  ${r.alg}  ${status.padEnd(29)}  created ${iso(r.created_at)}`);
        }
        return 0;
      }
      default:
        throw new UsageError('expected rotate-keys or keys');
    }
  },
};
