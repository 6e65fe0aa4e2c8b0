import { loadConfig } from '../../config.ts';
import { sealAudit } from '../../services/audit.ts';
import { verifyAuditChain } from '../../services/audit-verify.ts';
import { systemClock } from '../../services/context.ts';
import { openAndMigrate } from '../../storage/open.ts';
import type { Command } from '../command.ts';
import { parseOptions } from '../command.ts';
import type { CliIO } from '../io.ts';
import { UsageError } from '../io.ts';

export const auditCommand: Command = {
  summary: 'Verify the tamper-evident audit trail, or seal its current state',
  help: `Usage: opencis audit verify
       opencis audit seal

verify  Walks the whole audit trail — 32 hash chains ("lanes"; a target's events always go to the same lane) —
        recomputing every event's hash from its fields and the hash before it in its lane, and checks each lane's
        last event against the lane's head. Also checks the chain of seals, and that every lane still reaches each
        tip a seal recorded. Prints the number of events, a digest of all lane tips and the last seal, and exits 0
        when everything verifies. When something does not (an event altered, removed or reordered, a lane cut
        short), names the first such event or lane and exits 1.
seal    Records every lane's current tip together under one hash, chained to the previous seal (the audit-seal
        scheduled job does this hourly), and prints it. Keep the printed hash outside the database.`,
  async run(args, io) {
    const { positionals } = parseOptions(args, {}, 1);
    const action = positionals[0];
    if (action !== 'verify' && action !== 'seal') throw new UsageError('expected "verify" or "seal"');
    const db = await openAndMigrate(loadConfig());
    try {
      if (action === 'seal') {
        const seal = await sealAudit(db, systemClock);
        io.out(`Audit sealed: seal ${seal.id} at ${seal.at}, hash ${seal.hash}`);
        return 0;
      }
      return report(await verifyAuditChain(db), io);
    } finally {
      await db.close();
    }
  },
};

function report(res: Awaited<ReturnType<typeof verifyAuditChain>>, io: CliIO): number {
  if (res.ok) {
    io.out(
      `Audit chain verified: ${res.events} events in ${res.lanes} lanes, tips ${res.tipsDigest}\n` +
        (res.lastSeal
          ? `Last seal ${res.lastSeal.id} at ${res.lastSeal.at}: ${res.lastSeal.hash}`
          : 'No seal yet (opencis audit seal)'),
    );
    return 0;
  }
  const e = res.event;
  const where =
    res.lane === null
      ? `seal ${res.position}`
      : `${res.seq === null ? 'lane' : `event ${res.seq} in lane`} ${res.lane}${res.position === null ? '' : ` at position ${res.position}`}`;
  io.err(
    `Audit chain BROKEN at ${where} (${res.problem})` +
      (e ? `: ${e.action} on ${e.targetType} ${e.targetId ?? ''} by ${e.actor} at ${e.at}` : '') +
      `\n${res.events} events verified before it.`,
  );
  return 1;
}
