import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.ts';
import { type Config, loadConfig } from '../../src/config.ts';
import { ensureCertificateAuthority } from '../../src/services/certificates.ts';
import type { ServiceContext } from '../../src/services/context.ts';
import type { NotificationTransport, OutgoingMessage } from '../../src/services/notifications.ts';
import { TEST_OUTBOUND_ENV, TestClock, testContext, testSealer } from './context.ts';
import { createTestDatabase, type TestDatabase } from './db.ts';

/** A free TCP port on loopback (the server's PUBLIC_URL must name its port before it starts). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

export interface TestServer {
  url: string;
  port: number;
  app: FastifyInstance;
  t: TestDatabase;
  config: Config;
  clock: TestClock;
  /** Messages the server sent (one-time codes, warnings), as the person would receive them. */
  messages: OutgoingMessage[];
  /** The messages once the outbox has delivered everything due (delivery follows the request, not inside it). */
  delivered(): Promise<OutgoingMessage[]>;
  /** An operator context on the same database (the RA desk / CLI side of a journey). */
  operator(): ServiceContext;
  close(): Promise<void>;
}

/** The real app on a real port at http://localhost:PORT, on a fresh test database, with a CA. */
export async function startTestServer(env: Record<string, string> = {}, givenPort?: number): Promise<TestServer> {
  const port = givenPort ?? (await freePort());
  const url = `http://localhost:${port}`;
  const t = await createTestDatabase();
  const clock = TestClock.running();
  const config = loadConfig({
    PORT: String(port),
    HOST: '127.0.0.1',
    PUBLIC_URL: url,
    DATA_DIR: mkdtempSync(join(tmpdir(), 'opencis-e2e-')),
    LOG_LEVEL: 'silent',
    DEMO_DATA: 'false',
    ALLOW_EXAMPLE_NI_PREFIX: 'true',
    ...TEST_OUTBOUND_ENV,
    ...env,
  });
  const messages: OutgoingMessage[] = [];
  const transport: NotificationTransport = { send: async (m) => void messages.push(m) };
  const operator = () => testContext(t.db, { clock });
  await ensureCertificateAuthority(operator());
  // With NOTIFICATIONS_TRANSPORT given, the app sends through the real transport it names (SMTP, Notify).
  const app = await buildApp({
    config,
    db: t.db,
    sealer: testSealer,
    clock,
    logger: false,
    ...(env.NOTIFICATIONS_TRANSPORT === undefined ? { transport } : {}),
  });
  await app.listen({ port, host: '127.0.0.1' });
  return {
    url,
    port,
    app,
    t,
    config,
    clock,
    messages,
    async delivered() {
      await app.outbox.drain();
      return messages;
    },
    operator,
    async close() {
      await app.close();
      await t.close();
    },
  };
}
