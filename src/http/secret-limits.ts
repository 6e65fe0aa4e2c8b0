import type { FastifyReply, FastifyRequest } from 'fastify';
import { AppError, type ErrorCode } from '../domain/errors.ts';
import { assertSecretNotLocked, recordWrongSecret, secretKey } from '../services/attempts.ts';
import type { WebDeps } from './deps.ts';

/**
 * Route options that limit wrong guesses of one kind of secret per client address (services/attempts.ts): the lock is
 * checked before the body is read, and an answer with one of `wrong` codes counts one failure. Put on every route that
 * takes a secret a caller could try to guess: enrolment links, card grants, CIS1 tickets and agent session secrets.
 */
export function limitWrongSecrets(deps: Pick<WebDeps, 'db' | 'clock'>, kind: string, wrong: readonly ErrorCode[]) {
  return {
    onRequest: async (req: FastifyRequest) => {
      await assertSecretNotLocked(deps.db, secretKey(kind, req.ip ?? null), deps.clock.now());
    },
    onError: async (req: FastifyRequest, _reply: FastifyReply, err: Error) => {
      if (!(err instanceof AppError) || !wrong.includes(err.code)) return;
      try {
        await recordWrongSecret(deps.db, secretKey(kind, req.ip ?? null), deps.clock.now());
      } catch (e) {
        req.log.warn({ err: { message: (e as Error).message } }, 'wrong secret not counted');
      }
    },
  };
}
