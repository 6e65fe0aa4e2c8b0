import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApp } from './app.ts';
import type { Config } from './config.ts';
import { standardJobs } from './jobs/jobs.ts';
import { registerJobs, startScheduler } from './jobs/scheduler.ts';
import { createLogger } from './logger.ts';
import { transportFromConfig } from './notifications/transports.ts';
import { serviceContext, systemClock } from './services/context.ts';
import { startBanner } from './services/start-banner.ts';
import { prepareDatabase } from './services/startup.ts';
import { ADMIN_SOCKET_NAME, serveAdminSocket } from './storage/admin-socket.ts';
import type { Database } from './storage/database.ts';
import { adminSocketIdentity } from './storage/open.ts';

export interface RunningServer {
  app: FastifyInstance;
  db: Database;
  url: string;
  stop(): Promise<void>;
}

/** Opens storage, migrates, loads the catalogue, seeds demo data on first start, listens; stops cleanly on SIGTERM. */
export async function serve(config: Config, options: { handleSignals?: boolean } = {}): Promise<RunningServer> {
  const logger = createLogger(config.LOG_LEVEL);
  // Before the database: a transport setting that cannot work (an unreadable SMTP_CA_FILE) stops the start here.
  const transport = transportFromConfig(config);
  const { db, sealer, seededDemo } = await prepareDatabase(config, logger);
  const app = await buildApp({ config, db, sealer, clock: systemClock, logger, transport });
  const jobContext = serviceContext({
    db,
    sealer,
    clock: systemClock,
    actor: { kind: 'system' as const, id: 'system:scheduler' },
    requestId: null,
    allowExampleNiPrefix: config.ALLOW_EXAMPLE_NI_PREFIX,
  });
  // On the embedded database this process owns the data directory: `opencis` commands borrow it through this socket.
  const admin =
    db.kind === 'pglite'
      ? await serveAdminSocket(db, join(config.DATA_DIR, ADMIN_SOCKET_NAME), adminSocketIdentity(), {
          info: (message, data) => logger.info(data ?? {}, message),
          warn: (message, data) => logger.warn(data ?? {}, message),
        }).catch((err: unknown) => {
          // (A DATA_DIR path too long for a Unix socket, say.) The server runs; commands need it stopped, as before.
          logger.warn({ err: { message: (err as Error).message } }, 'admin socket not available');
          return null;
        })
      : null;
  const jobs = standardJobs(db, jobContext, app.outbox, config.PUBLIC_URL, { auditSealSink: config.AUDIT_SEAL_SINK });
  await registerJobs(db, jobs);
  const scheduler = startScheduler(db, jobs, { logger });
  try {
    await app.listen({ port: config.PORT, host: config.HOST });
  } catch (err) {
    await admin?.close();
    await app.close();
    await db.close();
    throw err;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.PORT;
  const url = config.PUBLIC_URL.replace(`:${config.PORT}`, `:${port}`);
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      // Behind a load balancer: first fail readiness and keep serving until the balancer has taken the node out
      // (SHUTDOWN_DRAIN_SECONDS), so no request is sent to a node that has stopped accepting.
      app.draining = true;
      if (config.SHUTDOWN_DRAIN_SECONDS > 0) {
        logger.info(`shutting down: readiness fails, still serving for ${config.SHUTDOWN_DRAIN_SECONDS} s`);
        await new Promise((resolve) => setTimeout(resolve, config.SHUTDOWN_DRAIN_SECONDS * 1000));
      }
      logger.info('shutting down: draining in-flight requests');
      scheduler.stop();
      await app.close(); // stops accepting (503 to new requests), waits for in-flight requests
      await admin?.close();
      await db.close();
      logger.info('stopped');
    })();
    return stopping;
  };
  if (options.handleSignals) {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      process.once(signal, () => {
        stop().then(
          () => process.exit(0),
          () => process.exit(1),
        );
      });
    }
  }
  const lines = [
    '',
    `OpenCIS is running at ${url}`,
    `  ${url}/                      start page`,
    `  ${url}/ra                    Registration Authority console`,
    `  ${url}/health                service health`,
    `  ${url}/api/openapi.json      API description`,
    `  ${url}/api/v1/rbac/catalogue National RBAC catalogue`,
    `  ${url}/metrics               Prometheus metrics`,
    `Database: ${db.kind === 'pglite' ? `embedded PGlite in ${config.DATA_DIR}` : 'PostgreSQL server (DATABASE_URL)'}`,
    ...(await startBanner(
      { ...jobContext, actor: { kind: 'system', id: 'system:demo' } },
      config,
      url,
      seededDemo !== null,
    )),
    '',
  ];
  process.stdout.write(`${lines.filter((l) => l !== '').join('\n')}\n`);
  return { app, db, url, stop };
}
