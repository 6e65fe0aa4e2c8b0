import { AppError, type ErrorCode } from '../domain/errors.ts';
import type { Actor } from '../domain/policy.ts';
import { appendAudit } from '../services/audit.ts';
import type { ServiceContext } from '../services/context.ts';
import { type EndReason, endSessionRow, type SessionRow } from './session-store.ts';

/**
 * A refused CIS1 request. Thrown where the check fails (often inside a transaction, which then rolls back); the
 * refusal is audited afterwards in its own transaction — and, when the session itself is the problem (card locked,
 * certificate revoked, timed out), that session is ended in the same transaction — so the audit record survives the
 * rollback and the client only ever sees the catalogued code.
 */
export class Refusal extends Error {
  constructor(
    readonly code: ErrorCode,
    readonly audit: {
      action: string;
      reason: string;
      userId?: string | null;
      actor?: Actor;
      after?: Record<string, unknown>;
    },
    readonly end?: {
      row: Pick<SessionRow, 'session_id' | 'user_id' | 'card_id' | 'workstation_id'>;
      reason: EndReason;
    },
  ) {
    super(code);
    this.name = 'Refusal';
  }
}

export function personActor(userId: string): Actor {
  return { kind: 'person', id: userId, userId };
}

/** Runs `fn`; a Refusal becomes an audit record (and a session end) and then the catalogued AppError. */
export async function withRefusals<T>(ctx: ServiceContext, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (!(err instanceof Refusal)) throw err;
    await recordRefusal(ctx, err);
    throw new AppError(err.code);
  }
}

export async function recordRefusal(ctx: ServiceContext, refusal: Refusal): Promise<void> {
  await ctx.transaction(async (tx) => {
    if (refusal.end) {
      const holder = { ...ctx, actor: { kind: 'system' as const, id: 'system:cis1' } };
      await endSessionRow(tx, holder, refusal.end.row, refusal.end.reason);
    }
    await appendAudit(
      tx,
      { ...ctx, actor: refusal.audit.actor ?? ctx.actor },
      {
        action: refusal.audit.action,
        targetType: 'person',
        targetId: refusal.audit.userId ?? null,
        before: null,
        after: { code: refusal.code, ...refusal.audit.after },
        reason: refusal.audit.reason,
      },
    );
  });
}
