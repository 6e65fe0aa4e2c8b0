import { loadConfig } from '../../config.ts';
import { migrate, migrationStatus } from '../../storage/migrate.ts';
import { openDatabase } from '../../storage/open.ts';
import type { Command } from '../command.ts';
import { parseOptions } from '../command.ts';

export const migrateCommand: Command = {
  summary: 'Apply pending database migrations (or show their status)',
  help: `Usage: opencis migrate [--status] [--allow-out-of-order]

Applies every pending migration in order, each in its own transaction (forward only). With --status, only lists
applied and pending migrations. Uses DATABASE_URL, or the embedded database in DATA_DIR.

Every start refuses a database whose history a fresh one would not have: a shipped migration edited after it was
applied (its recorded checksum differs), a migration this version does not ship, or a missing migration older than
one applied (it arrived out of order). --allow-out-of-order applies such a late migration after the later ones, once
you have checked that it does not depend on them.`,
  async run(args, io) {
    const { values } = parseOptions(args, { status: { type: 'boolean' }, 'allow-out-of-order': { type: 'boolean' } });
    const db = await openDatabase(loadConfig(), { throughRunningServer: true });
    try {
      if (values.status) {
        const s = await migrationStatus(db);
        io.out(`applied: ${s.applied.join(', ') || 'none'}\npending: ${s.pending.join(', ') || 'none'}`);
        return 0;
      }
      const { applied } = await migrate(db, undefined, { allowOutOfOrder: values['allow-out-of-order'] === true });
      io.out(
        applied.length === 0
          ? 'Database is up to date.'
          : applied.map((m) => `applied ${String(m.version).padStart(4, '0')}_${m.name}`).join('\n'),
      );
      return 0;
    } finally {
      await db.close();
    }
  },
};
