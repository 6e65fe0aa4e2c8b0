import { DEFAULT_PUBLISH_SECONDS, KEY_RELOAD_SECONDS, rotateSigningKeys } from '../../oidc/keys.ts';
import type { Repositories } from '../../storage/repositories/index.ts';
import type { Command } from '../command.ts';
import { parseOptions } from '../command.ts';
import { withOperatorContext } from '../database.ts';
import { UsageError } from '../io.ts';

/** The ID token lifetime (provider.ts ttl.IdToken): the least an old signing key must stay published. */
const ID_TOKEN_TTL = 3_600;
const MAX_OVERLAP = 30 * 86_400;
const MAX_PUBLISH = 86_400;

/**
 * How long old keys must stay in the JWKS after a rotation: the longest lifetime of anything they may have signed —
 * ID tokens (1 hour), or a relying party's longer access token lifetime (some keep the ID token as long as the access
 * token) — never less than an hour.
 */
export async function defaultOverlapSeconds(repos: Repositories): Promise<number> {
  return Math.max(ID_TOKEN_TTL, (await repos.clients.longestAccessTokenTtl()) ?? 0);
}

const iso = (d: Date | string | null) => (d === null ? '-' : new Date(d).toISOString().replace(/\.\d{3}Z$/, 'Z'));

export const oidcCommand: Command = {
  summary: 'OpenID Connect provider: rotate and list the ID token signing keys',
  help: `Usage: opencis oidc rotate-keys [--publish SECONDS] [--overlap SECONDS]
       opencis oidc keys [--all]

rotate-keys  rotates the ID token signing keys without downtime, in two phases. A new key of each algorithm (RS256,
             ES256, PS256) is published in the JWKS at once and signs ID tokens only after --publish seconds
             (default ${DEFAULT_PUBLISH_SECONDS}): every node reloads the keys every ${KEY_RELOAD_SECONDS} s, so by then every node publishes
             it and no relying party meets an unknown kid. The old keys stay published (status "retiring") until
             --overlap seconds after the last node stops signing with them, so tokens they signed still verify;
             then they are retired. Default overlap: the longest token lifetime of the registered relying parties,
             at least 3600 (the ID token lifetime). Every node shares the keys through the database.
keys         the signing keys: kid, algorithm, status (signing, published, retiring until…), created. --all includes
             retired ones.

Exit codes: 0 done, 1 failed, 2 usage error.`,
  async run(args, io) {
    const { values, positionals } = parseOptions(
      args,
      { overlap: { type: 'string' }, publish: { type: 'string' }, all: { type: 'boolean', default: false } },
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
        let publish = DEFAULT_PUBLISH_SECONDS;
        if (values.publish !== undefined) {
          if (!/^[0-9]{1,6}$/.test(values.publish) || Number(values.publish) > MAX_PUBLISH) {
            throw new UsageError(`--publish is a whole number of seconds, at most ${MAX_PUBLISH}`);
          }
          publish = Number(values.publish);
        }
        const res = await withOperatorContext(async (ctx) => {
          const seconds = overlap ?? (await defaultOverlapSeconds(ctx.repos));
          return rotateSigningKeys(ctx, seconds, publish);
        });
        io.out(`new       ${res.active.join(' ')} (published now, signing from ${iso(res.signsFrom)})`);
        io.out(
          res.retiring.length > 0
            ? `retiring  ${res.retiring.join(' ')} (published until ${iso(res.retiringUntil)})`
            : 'retiring  none',
        );
        if (publish <= KEY_RELOAD_SECONDS) {
          io.err(
            `Warning: with --publish at most ${KEY_RELOAD_SECONDS} s a node may sign with a key another node does not publish yet.`,
          );
        }
        if (overlap !== undefined && overlap < ID_TOKEN_TTL) {
          io.err(`Warning: an overlap under ${ID_TOKEN_TTL} s can leave unexpired ID tokens unverifiable.`);
        }
        return 0;
      }
      case 'keys': {
        if (values.overlap !== undefined) throw new UsageError('--overlap is for "rotate-keys"');
        if (values.publish !== undefined) throw new UsageError('--publish is for "rotate-keys"');
        const { rows, now } = await withOperatorContext(async (ctx) => {
          const keys = await ctx.repos.oidcKeys.listSigningKeys(values.all);
          return { rows: keys, now: ctx.clock.now() };
        });
        if (rows.length === 0) io.out('no signing keys (the server makes them at its first start)');
        for (const r of rows) {
          const status =
            r.status === 'retiring'
              ? `retiring until ${iso(r.retireAfter)}`
              : r.status === 'active' && r.activateAfter !== null && r.activateAfter > now
                ? `published, signs from ${iso(r.activateAfter)}`
                : r.status === 'active'
                  ? 'signing'
                  : r.status;
          io.out(`${r.kid}  ${r.alg}  ${status.padEnd(42)}  created ${iso(r.createdAt)}`);
        }
        return 0;
      }
      default:
        throw new UsageError('expected rotate-keys or keys');
    }
  },
};
