import { AppError, type ErrorCode } from '../domain/errors.ts';
import type { Actor } from '../domain/policy.ts';
import type { ServiceContext } from '../services/context.ts';
import { auditRefusal } from '../services/refusals.ts';
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
    const error = new AppError(err.code);
    await recordRefusal(ctx, err, error);
    throw error;
  }
}

export async function recordRefusal(ctx: ServiceContext, refusal: Refusal, error?: AppError): Promise<void> {
  const end = refusal.end;
  await auditRefusal(
    ctx,
    {
      action: refusal.audit.action,
      targetType: 'person',
      targetId: refusal.audit.userId ?? null,
      after: { code: refusal.code, ...refusal.audit.after },
      reason: refusal.audit.reason,
      ...(refusal.audit.actor ? { actor: refusal.audit.actor } : {}),
    },
    {
      mustRecord: true,
      ...(error ? { error } : {}),
      // The session that was the problem ends in the same transaction as the record of its refusal.
      ...(end
        ? {
            alongside: (tx) =>
              endSessionRow(tx, { ...ctx, actor: { kind: 'system', id: 'system:cis1' } }, end.row, end.reason).then(
                () => undefined,
              ),
          }
        : {}),
    },
  );
}
