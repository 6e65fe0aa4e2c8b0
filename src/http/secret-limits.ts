import type { FastifyReply, FastifyRequest } from 'fastify';
import { AppError, type ErrorCode } from '../domain/errors.ts';
import { assertSecretNotLocked, attemptPolicies, recordWrongSecret, secretKey } from '../services/attempts.ts';
import type { Clock } from '../services/context.ts';
import type { Repositories } from '../storage/repositories/index.ts';

/**
 * The addresses that gave a wrong secret of one kind on this node lately: only they are looked up on the way in, so a
 * right secret from anyone else costs no database read (the token and ticket endpoints stay at their statement count).
 * The count and the lock live in the database for the whole cluster; a node that has not yet seen an address fail lets
 * its first wrong try through unchecked, then checks it too — at most one try more per node per window.
 */
export class RecentFailures {
  private readonly seen = new Map<string, number>();
  constructor(
    private readonly keepMs = attemptPolicies.ip.windowMs + attemptPolicies.ip.lockMs,
    private readonly max = 20_000,
  ) {}

  has(key: string, now: number): boolean {
    const at = this.seen.get(key);
    if (at === undefined) return false;
    if (now - at <= this.keepMs) return true;
    this.seen.delete(key);
    return false;
  }

  add(key: string, now: number): void {
    this.seen.delete(key);
    this.seen.set(key, now);
    if (this.seen.size > this.max) this.seen.delete(this.seen.keys().next().value!);
  }
}

/** Checks, then counts, wrong secrets of one kind per client address (services/attempts.ts), as described above. */
export function secretGuard(deps: { repos: Repositories; clock: Clock }, kind: string) {
  const recent = new RecentFailures();
  return {
    async assertNotLocked(ip: string | null): Promise<void> {
      const counter = secretKey(kind, ip);
      if (counter && recent.has(counter.key, deps.clock.now().getTime())) {
        await assertSecretNotLocked(deps.repos, counter, deps.clock.now());
      }
    },
    async recordWrong(ip: string | null): Promise<void> {
      const counter = secretKey(kind, ip);
      if (!counter) return;
      recent.add(counter.key, deps.clock.now().getTime());
      await recordWrongSecret(deps.repos, counter, deps.clock.now());
    },
  };
}

/**
 * Route options that limit wrong guesses of one kind of secret per client address: the lock is checked before the
 * body is read, and an answer with one of `wrong` codes counts one failure. Put on every route that takes a secret a
 * caller could try to guess: enrolment links, card grants, CIS1 tickets and agent session secrets.
 */
export function limitWrongSecrets(
  deps: { repos: Repositories; clock: Clock },
  kind: string,
  wrong: readonly ErrorCode[],
) {
  const guard = secretGuard(deps, kind);
  return {
    onRequest: async (req: FastifyRequest) => {
      await guard.assertNotLocked(req.ip ?? null);
    },
    onError: async (req: FastifyRequest, _reply: FastifyReply, err: Error) => {
      if (!(err instanceof AppError) || !wrong.includes(err.code)) return;
      try {
        await guard.recordWrong(req.ip ?? null);
      } catch (e) {
        req.log.warn({ err: { message: (e as Error).message } }, 'wrong secret not counted');
      }
    },
  };
}
