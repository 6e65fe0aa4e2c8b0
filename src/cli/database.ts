import { loadConfig } from '../config.ts';
import { outboundPolicyFrom } from '../net/outbound.ts';
import { type ServiceContext, serviceContext, systemClock } from '../services/context.ts';
import { recordUnaudited } from '../services/refusals.ts';
import { prepareDatabase } from '../services/startup.ts';
import type { Database } from '../storage/database.ts';
import { operatorActor } from './io.ts';

/**
 * Opens the configured database for one CLI command (applying migrations and loading the catalogue, as a start of the
 * server does, but seeding no demo data) and always closes it. On the embedded database while a server runs on it,
 * the database is the server's, borrowed through its admin socket (src/storage/admin-socket.ts). Services get the
 * context; `db` is for the command's own plumbing (an outbox to deliver through).
 */
export async function withOperatorContext<T>(fn: (ctx: ServiceContext, db: Database) => Promise<T>): Promise<T> {
  const config = loadConfig();
  const { db, sealer } = await prepareDatabase({ ...config, DEMO_DATA: false }, undefined, {
    throughRunningServer: true,
  });
  const ctx = serviceContext({
    db,
    clock: systemClock,
    actor: operatorActor(),
    requestId: `cli-${process.pid}-${Date.now()}`,
    allowExampleNiPrefix: config.ALLOW_EXAMPLE_NI_PREFIX,
    sealer,
    outbound: outboundPolicyFrom(config),
  });
  try {
    return await fn(ctx, db);
  } catch (err) {
    // The CLI's part of the one refusal path (services/refusals.ts): a refusal no service recorded is recorded here.
    await recordUnaudited(ctx, err, `opencis ${process.argv.slice(2, 4).join(' ')}`);
    throw err;
  } finally {
    await db.close();
  }
}
