import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { smtpTransport } from '../../src/notifications/transports.ts';
import { registerPerson } from '../../src/services/people.ts';
import { TestClock, testContext } from '../support/context.ts';
import { backend, createTestDatabase, type TestDatabase } from '../support/db.ts';
import { recordingOutbox } from '../support/outbox.ts';
import { localhostCertificate, startSmtpServer, type TestSmtpServer } from '../support/smtp.ts';

/** Attacks on the notification path: a downgrade to clear text, a mail server with a certificate nobody vouched for. */
let t: TestDatabase;
let plain: TestSmtpServer;
let userId: string;
const clock = new TestClock();

before(async () => {
  t = await createTestDatabase();
  plain = await startSmtpServer({ starttls: false });
  userId = (
    await registerPerson(testContext(t.db, { clock }), {
      givenName: 'Sam',
      familyName: 'Target',
      dateOfBirth: '1980-02-02',
      email: 'sam.target@example.nhs.uk',
    })
  ).userId;
});
after(async () => {
  await plain.stop();
  await t.close();
});

async function tryToSend(transport: ReturnType<typeof smtpTransport>) {
  const { outbox } = recordingOutbox(t.db, clock, { transport, maxAttempts: 1 });
  try {
    await outbox.queue(
      t.repos,
      {
        userId,
        channel: 'email',
        to: 'sam.target@example.nhs.uk',
        template: 'test',
        subject: 'Code',
        text: 'is 12345678',
      },
      clock.now(),
    );
    return await outbox.drain();
  } finally {
    await outbox.stop();
  }
}

test(`[${backend}] a mail server that does not offer STARTTLS (stripped by a man in the middle) gets neither the message nor the password`, async () => {
  const counts = await tryToSend(
    smtpTransport({
      host: 'localhost',
      port: plain.port,
      security: 'starttls',
      user: plain.user,
      password: plain.password,
      from: 'no-reply@cis.example.nhs.uk',
      ca: readFileSync(plain.caFile, 'utf8'),
    }),
  );
  assert.equal(counts.sent, 0);
  assert.equal(plain.received.length, 0, 'nothing was sent in clear');
  const { rows } = await t.db.query<{ status: string; last_error: string }>(
    'SELECT status, last_error FROM notifications ORDER BY notification_id DESC LIMIT 1',
  );
  assert.equal(rows[0]!.status, 'failed');
  assert.match(rows[0]!.last_error, /STARTTLS|TLS/i);
});

test(`[${backend}] a mail server whose certificate does not chain to SMTP_CA_FILE (or the system's CAs) is not trusted`, async () => {
  const real = await startSmtpServer();
  try {
    const counts = await tryToSend(
      smtpTransport({
        host: 'localhost',
        port: real.port,
        security: 'starttls',
        user: real.user,
        password: real.password,
        from: 'no-reply@cis.example.nhs.uk',
        // Another CA than the one that issued the server's certificate.
        ca: readFileSync(localhostCertificate().caFile, 'utf8'),
      }),
    );
    assert.equal(counts.sent, 0);
    assert.equal(real.received.length, 0);
  } finally {
    await real.stop();
  }
});
