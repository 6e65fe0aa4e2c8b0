import { AUDIT_LANES, type AuditSeal, GENESIS_HASH, sealHash, signingKey } from '../domain/audit/chain.ts';
import { AppError } from '../domain/errors.ts';
import type { Repositories } from '../storage/repositories/index.ts';
import { laneHeads, sealFromRow } from './audit.ts';
import { appendToSink, lastSealIdInSink } from './audit-sink.ts';
import { verifyAuditChain } from './audit-verify.ts';
import type { StoreContext } from './context.ts';

export interface SealOptions {
  /**
   * Let this seal be the first signed one although events written before audit keys exist: it then vouches for them.
   * Only an operator does this, once, after upgrading (`opencis audit seal --adopt-unkeyed`); the hourly job never
   * does, so someone who removes every signed seal and re-writes history in the old, unkeyed form does not get it
   * signed by the next seal.
   */
  adoptUnkeyed?: boolean;
  /** AUDIT_SEAL_SINK: the file every seal is also appended to, one JSON line each (src/services/audit-sink.ts). */
  sinkFile?: string;
}

/**
 * Records every lane's committed tip together under one hash signed with the signing audit key, chained to the
 * previous seal. The heads are read in one statement, so the seal is one consistent moment of the trail. A seal chain
 * cut at its tail is as undetectable from inside the database as a lane's: ship seals to AUDIT_SEAL_SINK, or note the
 * printed hash elsewhere.
 *
 * The first signed seal vouches for every unkeyed event it records, so it is made only after the whole trail has been
 * verified — and, when there are unkeyed events, only with the operator's adoption.
 */
export async function sealAudit(
  ctx: StoreContext,
  options: SealOptions = {},
): Promise<AuditSeal & { adopted: number }> {
  const ring = ctx.sealer.auditKeys;
  const key = signingKey(ring);
  let adopted = 0;
  if (!(await ctx.repos.audit.hasSignedSeal())) {
    // Events appended meanwhile are keyed: only what this sees can be unkeyed.
    const check = await verifyAuditChain(ctx.repos, ring, { vouchUnkeyed: true });
    if (!check.ok) {
      throw new AppError('audit.chain_broken', { problem: check.problem, lane: check.lane, position: check.position });
    }
    if (check.unkeyedEvents > 0 && !options.adoptUnkeyed) {
      throw new AppError('audit.adoption_required', { unkeyedEvents: check.unkeyedEvents });
    }
    adopted = check.unkeyedEvents;
  }
  const sealed = await ctx.transaction(async (tx) => {
    // One sealer at a time (the job runs once across the cluster, but the CLI can run beside it).
    await tx.audit.lockSealing();
    const heads = await laneHeads(tx);
    const tips = Array.from({ length: AUDIT_LANES }, (_, lane) => {
      const tip = heads.get(lane);
      if (!tip) throw new Error(`audit lane ${lane} has no head row`);
      return tip;
    });
    const last = await tx.audit.lastSeal();
    const seal: Omit<AuditSeal, 'hash'> = {
      id: last ? last.id + 1 : 1,
      at: ctx.clock.now().toISOString(),
      tips,
      prevHash: last?.hash ?? GENESIS_HASH,
      keyId: key.id,
    };
    const hash = sealHash(seal, key);
    await tx.audit.insertSeal({
      id: seal.id,
      at: seal.at,
      tips: tips.map((t) => [t.position, t.hash]),
      prevHash: seal.prevHash,
      hash,
      keyId: key.id,
    });
    return { ...seal, hash, adopted };
  });
  // After the commit: a seal in the sink is always one the database has (or had).
  if (options.sinkFile) await shipSeals(ctx.repos, options.sinkFile);
  return sealed;
}

/**
 * Appends to the sink every seal the database has past the sink's last one (so a seal whose shipping failed goes with
 * the next). Returns how many were shipped.
 */
export async function shipSeals(repos: Repositories, file: string): Promise<number> {
  const last = await lastSealIdInSink(file);
  const rows = await repos.audit.sealsAfter(last);
  await appendToSink(file, rows.map(sealFromRow));
  return rows.length;
}
