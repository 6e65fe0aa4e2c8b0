import { loadConfig } from '../../config.ts';
import { verifyAuditChain } from '../../services/audit.ts';
import { openAndMigrate } from '../../storage/open.ts';
import type { Command } from '../command.ts';
import { parseOptions } from '../command.ts';
import { UsageError } from '../io.ts';

export const auditCommand: Command = {
  summary: 'Verify the tamper-evident audit chain',
  help: `Usage: opencis audit verify

Walks the whole audit trail, recomputing every event's hash from its fields and the hash before it. Prints the number
of events and the chain's head hash, and exits 0 when every event verifies. When one does not (an event altered,
removed or reordered), names the first such event and exits 1.`,
  async run(args, io) {
    const { positionals } = parseOptions(args, {}, 1);
    if (positionals[0] !== 'verify') throw new UsageError('expected "verify"');
    const db = await openAndMigrate(loadConfig());
    try {
      const res = await verifyAuditChain(db);
      if (res.ok) {
        io.out(`Audit chain verified: ${res.events} events, head ${res.headHash}`);
        return 0;
      }
      const e = res.event;
      io.err(
        `Audit chain BROKEN at event ${res.seq} (${res.problem})` +
          (e ? `: ${e.action} on ${e.targetType} ${e.targetId ?? ''} by ${e.actor} at ${e.at}` : '') +
          `\n${res.events} events before it verify.`,
      );
      return 1;
    } finally {
      await db.close();
    }
  },
};
