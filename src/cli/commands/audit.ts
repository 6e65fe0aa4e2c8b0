import { loadConfig } from '../../config.ts';
import { sealAudit } from '../../services/audit-seal.ts';
import { verifyAuditChain } from '../../services/audit-verify.ts';
import { storeContext, systemClock } from '../../services/context.ts';
import { openSealer } from '../../services/startup.ts';
import { openAndMigrate } from '../../storage/open.ts';
import type { Command } from '../command.ts';
import { parseOptions } from '../command.ts';
import type { CliIO } from '../io.ts';
import { UsageError } from '../io.ts';

export const auditCommand: Command = {
  summary: 'Verify the tamper-evident audit trail, or seal its current state',
  help: `Usage: opencis audit verify
       opencis audit seal [--adopt-unkeyed]

verify  Walks the whole audit trail — 32 hash chains ("lanes"; a target's events always go to the same lane) —
        recomputing every event's hash from its fields and the hash before it in its lane with the audit keys
        (AUDIT_KEY_FILE, or the key derived from SECRETS_KEY), and checks each lane's last event against the lane's
        head. Also checks the chain of seals and their signatures, that every lane still reaches each tip a seal
        recorded, and, with AUDIT_SEAL_SINK, that every seal shipped there is still in the database as shipped.
        Prints the number of events, a digest of all lane tips and the last seal, and exits 0 when everything
        verifies. When something does not (an event altered, removed or reordered, a lane re-hashed without the
        key, a lane cut short, a seal lost), names the first such event, lane or seal and exits 1.
seal    Records every lane's current tip together under one hash signed with the audit key, chained to the
        previous seal (the audit-seal scheduled job does this hourly), ships it to AUDIT_SEAL_SINK, and prints it.
        --adopt-unkeyed: once, after upgrading from a version without audit keys, let this first signed seal vouch
        for the events written before (the hourly job never does). Refused without it while such events have no
        signed seal.`,
  async run(args, io) {
    const { positionals, values } = parseOptions(args, { 'adopt-unkeyed': { type: 'boolean' } }, 1);
    const action = positionals[0];
    if (action !== 'verify' && action !== 'seal') throw new UsageError('expected "verify" or "seal"');
    if (action === 'verify' && values['adopt-unkeyed']) throw new UsageError('--adopt-unkeyed is for "seal"');
    const config = loadConfig();
    const sealer = openSealer(config);
    const db = await openAndMigrate(config, { throughRunningServer: true });
    try {
      const store = storeContext({ db, clock: systemClock, sealer });
      if (action === 'seal') {
        const seal = await sealAudit(store, {
          adoptUnkeyed: values['adopt-unkeyed'],
          sinkFile: config.AUDIT_SEAL_SINK,
        });
        io.out(`Audit sealed: seal ${seal.id} at ${seal.at}, hash ${seal.hash} (key ${seal.keyId})`);
        if (seal.adopted > 0) {
          io.out(`This first signed seal vouches for the ${seal.adopted} events written before audit keys.`);
        }
        return 0;
      }
      return report(await verifyAuditChain(store.repos, sealer.auditKeys, { sinkFile: config.AUDIT_SEAL_SINK }), io);
    } finally {
      await db.close();
    }
  },
};

function report(res: Awaited<ReturnType<typeof verifyAuditChain>>, io: CliIO): number {
  if (res.ok) {
    const lines = [
      `Audit chain verified: ${res.events} events in ${res.lanes} lanes, tips ${res.tipsDigest}`,
      res.lastSeal
        ? `Last seal ${res.lastSeal.id} at ${res.lastSeal.at}: ${res.lastSeal.hash}` +
          (res.lastSeal.keyId ? ` (signed, key ${res.lastSeal.keyId})` : ' (unsigned: from before audit keys)')
        : 'No seal yet (opencis audit seal)',
      `Audit key ${res.signingKeyId}${res.keyIdsSeen.some((k) => k !== res.signingKeyId) ? `; keys seen: ${res.keyIdsSeen.join(', ')}` : ''}`,
    ];
    if (res.unkeyedEvents > 0) {
      lines.push(`${res.unkeyedEvents} events from before audit keys, vouched for by the first signed seal`);
    }
    if (res.sink) {
      lines.push(
        `Seal sink: ${res.sink.seals} seals, all in the database as shipped` +
          (res.sink.notShipped.length > 0 ? `; not shipped yet: ${res.sink.notShipped.join(', ')}` : ''),
      );
    }
    io.out(lines.join('\n'));
    return 0;
  }
  const e = res.event;
  const where =
    res.lane === null
      ? `${res.problem.startsWith('sink_') ? 'seal sink entry' : 'seal'} ${res.position}`
      : `${res.seq === null ? 'lane' : `event ${res.seq} in lane`} ${res.lane}${res.position === null ? '' : ` at position ${res.position}`}`;
  io.err(
    `Audit chain BROKEN at ${where} (${res.problem})` +
      (e ? `: ${e.action} on ${e.targetType} ${e.targetId ?? ''} by ${e.actor} at ${e.at}` : '') +
      `\n${res.events} events verified before it.`,
  );
  return 1;
}
