import { AppError, type ErrorCode } from '../domain/errors.ts';
import type { Actor } from '../domain/policy.ts';
import type { Repositories } from '../storage/repositories/index.ts';
import { appendAudit } from './audit.ts';
import type { ServiceContext } from './context.ts';

/**
 * The one refusal path: deny → audit → error. Whatever door a refusal comes through (the RA console, the REST API, the
 * CLI, OpenID Connect client registration, the card agent's calls, CIS1), it is written to the audit trail here and
 * only here, then thrown as its catalogued AppError.
 *
 * - A service that knows why it refused (a card that failed a check, an RA action outside the caller's powers) calls
 *   `refuse` (or `auditRefusal` then throws): the record says what was tried, on whom, and why.
 * - A refusal the service did not record itself — `authorize` denying a read, a door's own guard — is recorded by the
 *   door that catches it (`recordUnaudited`): the HTTP error handler for the web doors, `withOperatorContext` for the
 *   CLI. An error is recorded once: `auditRefusal` marks it.
 *
 * The record is written in a small transaction of its own, after the action's transaction has rolled back, so it
 * survives the rollback. When the store is gone the refusal still stands (nothing was changed) and is still answered.
 */
export interface RefusalRecord {
  /** What the record is called in the trail: `ra.refused`, `signin.failed`, `cis1.signin_refused`, `access.refused` … */
  action: string;
  targetType: string;
  targetId: string | null;
  /** Why, for the trail (never shown to the caller beyond the catalogued message). */
  reason: string;
  after?: Record<string, unknown> | null;
  /** Who is recorded as acting, when not the context's actor (e.g. the card holder in a CIS1 sign-in). */
  actor?: Actor;
}

const recorded = new WeakSet<object>();

/** Refusals worth a record: permission (403) and the process's own rules (409: already decided, inactive). */
export function isRefusal(err: unknown): err is AppError {
  return err instanceof AppError && (err.status === 403 || err.status === 409);
}

/** Whether this error's refusal is already in the audit trail. */
export function wasAudited(err: unknown): boolean {
  return typeof err === 'object' && err !== null && recorded.has(err);
}

/**
 * Writes a refusal's record. `alongside` runs in the same transaction (e.g. ending the CIS1 session that was the
 * problem). With `mustRecord`, a failure to write is thrown (the caller's answer depends on the record); otherwise it is
 * swallowed: the refusal stands.
 */
export async function auditRefusal(
  ctx: Pick<ServiceContext, 'transaction' | 'clock' | 'actor' | 'requestId' | 'sealer'>,
  record: RefusalRecord,
  options: { alongside?: (tx: Repositories) => Promise<void>; mustRecord?: boolean; error?: AppError } = {},
): Promise<void> {
  try {
    await ctx.transaction(async (tx) => {
      await options.alongside?.(tx);
      await appendAudit(
        tx,
        { ...ctx, actor: record.actor ?? ctx.actor },
        {
          action: record.action,
          targetType: record.targetType,
          targetId: record.targetId,
          before: null,
          after: record.after ?? null,
          reason: record.reason,
        },
      );
    });
    if (options.error) recorded.add(options.error);
  } catch (err) {
    if (options.mustRecord) throw err;
    // The refusal stands even when its record cannot be written (database gone): nothing was changed.
  }
}

/** Deny → audit → error in one call: records the refusal and returns the error to throw. */
export async function refuse(
  ctx: Pick<ServiceContext, 'transaction' | 'clock' | 'actor' | 'requestId' | 'sealer'>,
  code: ErrorCode,
  record: RefusalRecord,
  details?: unknown,
): Promise<AppError> {
  const error = new AppError(code, details);
  await auditRefusal(ctx, record, { error, mustRecord: true });
  return error;
}

/**
 * Records a permission refusal (403) the code that raised it did not record (an `authorize` denial outside an RA
 * action, a door's guard), as `access.refused`: what was asked (`what`: the route or command), the code and its details.
 */
export async function recordUnaudited(
  ctx: Pick<ServiceContext, 'transaction' | 'clock' | 'actor' | 'requestId' | 'sealer'>,
  err: unknown,
  what: string,
  about: { targetType: string; targetId: string | null } = { targetType: 'request', targetId: null },
): Promise<void> {
  if (!(err instanceof AppError) || err.status !== 403 || wasAudited(err)) return;
  await auditRefusal(
    ctx,
    {
      ...about,
      action: 'access.refused',
      reason: err.code,
      after: { what, code: err.code, details: err.details ?? null },
    },
    { error: err },
  );
}
