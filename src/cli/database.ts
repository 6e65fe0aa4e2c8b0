import { loadConfig } from '../config.ts';
import { outboundPolicyFrom } from '../net/outbound.ts';
import { type ServiceContext, serviceContext, systemClock } from '../services/context.ts';
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
  try {
    return await fn(
      serviceContext({
        db,
        clock: systemClock,
        actor: operatorActor(),
        requestId: `cli-${process.pid}-${Date.now()}`,
        allowExampleNiPrefix: config.ALLOW_EXAMPLE_NI_PREFIX,
        sealer,
        outbound: outboundPolicyFrom(config),
      }),
      db,
    );
  } finally {
    await db.close();
  }
}
