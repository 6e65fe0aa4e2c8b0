import assert from 'node:assert/strict';
import { after, before, beforeEach, test } from 'node:test';
import { notifyTransport, smtpTransport } from '../../src/notifications/transports.ts';
import { verifyEnrolment } from '../../src/services/enrolment.ts';
import { sendOneTimeCode } from '../../src/services/one-time-codes.ts';
import { failedNotificationsReport } from '../../src/services/operations-reports.ts';
import { registerPerson } from '../../src/services/people.ts';
import { unitOfWork } from '../../src/storage/repositories/index.ts';
import { testContext } from '../support/context.ts';
import { backend } from '../support/db.ts';
import { startNotifyApi, type TestNotifyApi } from '../support/notify-api.ts';
import { recordingOutbox } from '../support/outbox.ts';
import { startTestServer, type TestServer } from '../support/server.ts';
import { mailText, startSmtpServer, type TestSmtpServer } from '../support/smtp.ts';

/**
 * Notifications end to end: the app, configured for SMTP, sends one-time codes through a real SMTP server (STARTTLS,
 * authentication) started here; the server going down loses nothing and delays no request; undeliverable messages
 * end failed and visible to the RA. GOV.UK Notify's official client talks to a server that checks the request shape
 * Notify documents (test/support/notify-api.ts).
 */
let smtp: TestSmtpServer;
let server: TestServer;
let n = 0;

before(async () => {
  smtp = await startSmtpServer();
  server = await startTestServer({
    NOTIFICATIONS_TRANSPORT: 'smtp',
    SMTP_HOST: 'localhost',
    SMTP_PORT: String(smtp.port),
    SMTP_SECURITY: 'starttls',
    SMTP_USER: smtp.user,
    SMTP_PASSWORD: smtp.password,
    SMTP_FROM: 'OpenCIS <no-reply@cis.example.nhs.uk>',
    SMTP_CA_FILE: smtp.caFile,
    NOTIFICATIONS_MAX_ATTEMPTS: '4',
  });
});
after(async () => {
  await server.close();
  await smtp.stop();
});
beforeEach(async () => {
  smtp.rejectRecipients.clear();
  await smtp.start(); // (if a test stopped it)
});

async function newPerson(extra: Record<string, unknown> = {}) {
  n++;
  const p = await registerPerson(server.operator(), {
    givenName: `Notified${n}`,
    familyName: 'Person',
    dateOfBirth: '1985-01-01',
    niNumber: `JK${String(300000 + n)}A`,
    email: `notified${n}@example.nhs.uk`,
    identityAssuranceLevel: 3,
    ...extra,
  });
  await server.t.db.query('UPDATE people SET email_verified_at = $2 WHERE user_id = $1', [
    p.userId,
    server.clock.now(),
  ]);
  return p;
}

/** Starts self-service enrolment over HTTP, as the person's browser does (CSRF cookie and token from the page). */
async function startEnrolmentOverHttp(email: string): Promise<number> {
  const page = await fetch(`${server.url}/enrol`);
  const cookie = (page.headers.getSetCookie() ?? []).map((c) => c.split(';')[0]).join('; ');
  const token = /name="_csrf" value="([^"]+)"/.exec(await page.text())?.[1];
  assert.ok(token);
  const res = await fetch(`${server.url}/enrol/start`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie },
    body: new URLSearchParams({ _csrf: token, email }).toString(),
  });
  await res.text();
  return res.status;
}

async function rowsOf(userId: string) {
  const { rows } = await server.t.db.query<{
    status: string;
    attempts: number;
    payload_sealed: string | null;
    last_error: string | null;
    provider_id: string | null;
    next_attempt_at: Date | null;
  }>(
    `SELECT status, attempts, payload_sealed, last_error, provider_id, next_attempt_at FROM notifications
     WHERE user_id = $1 ORDER BY notification_id`,
    [userId],
  );
  return rows;
}

async function metrics(): Promise<string> {
  return (await fetch(`${server.url}/metrics`)).text();
}

const codeIn = (text: string) => /is (\d{8})/.exec(text)?.[1];

test(`[${backend}] a one-time code reaches a real SMTP server over STARTTLS with authentication, and works; its content is erased once sent`, async () => {
  const p = await newPerson();
  assert.equal(await startEnrolmentOverHttp(p.email!), 200);
  await server.app.outbox.drain();
  const mail = smtp.received.find((m) => m.to.includes(p.email!));
  assert.ok(mail, 'the mail server received the message');
  assert.equal(mail.secure, true, 'sent after STARTTLS');
  assert.equal(mail.user, smtp.user, 'after authenticating');
  assert.equal(mail.from, 'no-reply@cis.example.nhs.uk');
  assert.match(mail.raw, /^Subject: Your OpenCIS code$/m);
  assert.match(mail.raw, /^X-OpenCIS-Reference: opencis-\d+$/im);
  const code = codeIn(mailText(mail));
  assert.ok(code);
  const [row] = await rowsOf(p.userId);
  assert.equal(row!.status, 'sent');
  assert.equal(row!.attempts, 1);
  assert.equal(row!.payload_sealed, null, 'the code is not kept once sent');
  assert.ok(row!.provider_id, 'the Message-ID is recorded');
  const signedIn = await verifyEnrolment(testContext(server.t.db, { clock: server.clock }), {
    email: p.email,
    code,
    niNumber: p.niNumber,
    ip: '10.9.0.1',
  });
  assert.equal(signedIn.userId, p.userId);
  assert.match(await metrics(), /^opencis_notifications_sent_total [1-9]/m);
});

test(`[${backend}] the mail server down: the request still answers, nothing is lost, and the message goes once it is back`, async () => {
  const p = await newPerson();
  await smtp.stop();
  assert.equal(await startEnrolmentOverHttp(p.email!), 200, 'the page answers while the mail server is down');
  const down = await server.app.outbox.drain();
  assert.equal(down.sent, 0);
  let [row] = await rowsOf(p.userId);
  assert.equal(row!.status, 'queued');
  assert.equal(row!.attempts, 1);
  assert.match(row!.last_error ?? '', /ECONNECTION|ECONNREFUSED/);
  assert.ok(row!.payload_sealed, 'kept, sealed, until it is sent');
  assert.match(await metrics(), /^opencis_notification_outbox\{state="queued"\} [1-9]/m);
  assert.match(await metrics(), /^opencis_notification_retries_total [1-9]/m);

  await smtp.start();
  // Not before its backoff has passed (30 s ± 20 % after the first failure)…
  assert.equal((await server.app.outbox.drain()).sent, 0);
  assert.equal(smtp.received.filter((m) => m.to.includes(p.email!)).length, 0);
  // …then it goes, once.
  server.clock.advanceDays(1 / 1440);
  assert.equal((await server.app.outbox.drain()).sent, 1);
  [row] = await rowsOf(p.userId);
  assert.equal(row!.status, 'sent');
  assert.equal(row!.attempts, 2);
  const mails = smtp.received.filter((m) => m.to.includes(p.email!));
  assert.equal(mails.length, 1);
  assert.ok(codeIn(mailText(mails[0]!)));
});

test(`[${backend}] a mailbox the server refuses (550) fails at once, is never retried, and the RA sees it in a report`, async () => {
  const p = await newPerson();
  smtp.rejectRecipients.add(p.email!);
  assert.equal(await startEnrolmentOverHttp(p.email!), 200);
  const counts = await server.app.outbox.drain();
  assert.equal(counts.failed, 1);
  const [row] = await rowsOf(p.userId);
  assert.equal(row!.status, 'failed');
  assert.equal(row!.attempts, 1, 'a permanent refusal is not retried');
  assert.equal(row!.payload_sealed, null);
  assert.match(row!.last_error ?? '', /550/);
  server.clock.advanceDays(1);
  await server.app.outbox.drain();
  assert.equal((await rowsOf(p.userId))[0]!.attempts, 1, 'still not retried a day later');
  server.clock.advanceDays(-1);

  const lines = await failedNotificationsReport(server.operator(), {});
  const line = lines.find((l) => l.userId === p.userId);
  assert.ok(line, 'in the RA report of failed messages');
  assert.equal(line.template, 'one_time_code.enrolment');
  assert.equal(line.channel, 'email');
  assert.match(line.lastError ?? '', /550/);
  const { rows: audit } = await server.t.db.query<{ action: string }>(
    "SELECT action FROM audit_events WHERE target_id = $1 AND action = 'notification.failed'",
    [p.userId],
  );
  assert.equal(audit.length, 1);
  assert.match(await metrics(), /^opencis_notification_outbox\{state="failed"\} [1-9]/m);
  // The report over HTTP is for RA staff only.
  const anonymous = await fetch(`${server.url}/api/v1/reports/notifications-failed`);
  assert.equal(anonymous.status, 401);
  // Out-of-range arguments are usage errors.
  await assert.rejects(failedNotificationsReport(server.operator(), { withinDays: 0 }), { code: 'request.invalid' });
  await assert.rejects(failedNotificationsReport(server.operator(), { limit: 5000 }), { code: 'request.invalid' });
});

test(`[${backend}] a message is never retried for ever: after NOTIFICATIONS_MAX_ATTEMPTS it is failed (a wrong SMTP password)`, async () => {
  const p = await newPerson();
  const { outbox } = recordingOutbox(server.t.db, server.clock, {
    maxAttempts: 3,
    transport: smtpTransport({
      host: 'localhost',
      port: smtp.port,
      security: 'starttls',
      user: smtp.user,
      password: 'wrong',
      from: 'no-reply@cis.example.nhs.uk',
      ca: (await import('node:fs')).readFileSync(smtp.caFile, 'utf8'),
    }),
  });
  try {
    await unitOfWork(server.t.db)((tx) =>
      outbox.queue(
        tx,
        { userId: p.userId, channel: 'email', to: p.email!, template: 'test.message', subject: 'Hello', text: 'Hi' },
        server.clock.now(),
      ),
    );
    const seen: string[] = [];
    for (let i = 0; i < 5; i++) {
      await outbox.drain();
      const [row] = await rowsOf(p.userId);
      seen.push(`${row!.status}:${row!.attempts}`);
      server.clock.advanceDays(1 / 12); // two hours: past any backoff
    }
    assert.deepEqual(seen, ['queued:1', 'queued:2', 'failed:3', 'failed:3', 'failed:3']);
    const [row] = await rowsOf(p.userId);
    assert.match(row!.last_error ?? '', /EAUTH.*after 3 attempts/);
  } finally {
    await outbox.stop();
  }
});

test(`[${backend}] a one-time code that could not be sent before it expired is marked failed, not sent late`, async () => {
  const p = await newPerson();
  await smtp.stop();
  assert.equal(await startEnrolmentOverHttp(p.email!), 200);
  await server.app.outbox.drain();
  await smtp.start();
  server.clock.advanceDays(16 / 1440);
  await server.app.outbox.drain();
  const [row] = await rowsOf(p.userId);
  assert.equal(row!.status, 'failed');
  assert.match(row!.last_error ?? '', /expired/);
  assert.equal(smtp.received.filter((m) => m.to.includes(p.email!)).length, 0);
});

// ---------------------------------------------------------------------------------------------------------------
// GOV.UK Notify

const EMAIL_TEMPLATE = '5f0a8a0c-3a46-4bb0-9c8b-0b7b4f5c2d10';
const SMS_TEMPLATE = '0d6f4a1e-7c2b-4c8e-a2f5-6e3c1b9d8a74';

async function withNotify(run: (api: TestNotifyApi) => Promise<void>) {
  const api = await startNotifyApi([
    { id: EMAIL_TEMPLATE, type: 'email', subject: '((subject))', body: '((body))' },
    { id: SMS_TEMPLATE, type: 'sms', body: '((body))' },
  ]);
  try {
    await run(api);
  } finally {
    await api.close();
  }
}

test(`[${backend}] GOV.UK Notify: the official client's email and text message requests pass Notify's documented checks`, async () => {
  await withNotify(async (api) => {
    const p = await newPerson({ mobile: '07700900456' });
    await server.t.db.query('UPDATE people SET mobile_verified_at = $2 WHERE user_id = $1', [
      p.userId,
      server.clock.now(),
    ]);
    const { outbox } = recordingOutbox(server.t.db, server.clock, {
      transport: notifyTransport({
        apiKey: api.apiKey,
        baseUrl: api.baseUrl,
        emailTemplateId: EMAIL_TEMPLATE,
        smsTemplateId: SMS_TEMPLATE,
      }),
    });
    const ctx = testContext(server.t.db, { clock: server.clock });
    // With a text message template, a code goes to the verified mobile.
    assert.equal((await sendOneTimeCode(ctx, outbox, p, 'card_unlock', null)).channel, 'mobile');
    await outbox.queue(
      server.t.repos,
      {
        userId: p.userId,
        channel: 'email',
        to: p.email!,
        template: 'card.expiry_warning.30',
        subject: 'Your smartcard certificate expires soon',
        text: 'The certificate on your smartcard expires in 30 days.',
      },
      server.clock.now(),
    );
    assert.deepEqual(await outbox.drain(), { sent: 2, retried: 0, failed: 0 });
    assert.deepEqual(
      api.answers.map((a) => a.status),
      [201, 201],
    );
    const sms = api.accepted.find((a) => a.type === 'sms')!;
    assert.equal(sms.to, '07700900456');
    assert.equal(sms.templateId, SMS_TEMPLATE);
    assert.match(sms.body, /^Your code to unlock your smartcard is \d{8}\./);
    assert.match(sms.reference ?? '', /^opencis-\d+$/);
    const email = api.accepted.find((a) => a.type === 'email')!;
    assert.equal(email.to, p.email);
    assert.equal(email.subject, 'Your smartcard certificate expires soon');
    assert.equal(email.body, 'The certificate on your smartcard expires in 30 days.');
    const rows = await rowsOf(p.userId);
    assert.deepEqual(
      rows.map((r) => r.status),
      ['sent', 'sent'],
    );
    assert.deepEqual(rows.map((r) => r.provider_id).sort(), api.accepted.map((a) => a.id).sort(), 'Notify ids kept');
    // Without a text message template, the same person's code goes to their verified email.
    const emailOnly = recordingOutbox(server.t.db, server.clock, {
      transport: notifyTransport({ apiKey: api.apiKey, baseUrl: api.baseUrl, emailTemplateId: EMAIL_TEMPLATE }),
    }).outbox;
    assert.equal((await sendOneTimeCode(ctx, emailOnly, p, 'card_unlock', null)).channel, 'email');
    await emailOnly.drain();
    assert.equal(api.accepted.at(-1)!.type, 'email');
  });
});

test(`[${backend}] GOV.UK Notify: 500 and 429 are retried, a 400 (not a mobile number) fails at once, a wrong key (403) fails after its attempts`, async () => {
  await withNotify(async (api) => {
    const p = await newPerson();
    const make = (apiKey: string) =>
      recordingOutbox(server.t.db, server.clock, {
        maxAttempts: 2,
        transport: notifyTransport({
          apiKey,
          baseUrl: api.baseUrl,
          emailTemplateId: EMAIL_TEMPLATE,
          smsTemplateId: SMS_TEMPLATE,
        }),
      }).outbox;
    const outbox = make(api.apiKey);
    const message = { userId: p.userId, template: 'test.message', subject: 'Hello', text: 'Hi' };
    await outbox.queue(server.t.repos, { ...message, channel: 'email', to: p.email! }, server.clock.now());
    api.failNext(1, 500);
    assert.equal((await outbox.drain()).retried, 1);
    server.clock.advanceDays(1 / 24);
    api.failNext(1, 429);
    assert.equal((await outbox.drain()).retried, 0, 'the second attempt of two fails for good');
    let rows = await rowsOf(p.userId);
    assert.equal(rows[0]!.status, 'failed');
    assert.match(rows[0]!.last_error ?? '', /429.*RateLimitError.*after 2 attempts/);

    await outbox.queue(server.t.repos, { ...message, channel: 'mobile', to: '0123' }, server.clock.now());
    assert.equal((await outbox.drain()).failed, 1);
    rows = await rowsOf(p.userId);
    assert.equal(rows[1]!.status, 'failed');
    assert.equal(rows[1]!.attempts, 1);
    assert.match(rows[1]!.last_error ?? '', /400.*ValidationError/);

    const wrongKey = make(api.apiKey.replace(/.{36}$/, '00000000-0000-4000-8000-000000000000'));
    await wrongKey.queue(server.t.repos, { ...message, channel: 'email', to: p.email! }, server.clock.now());
    await wrongKey.drain();
    server.clock.advanceDays(1 / 24);
    await wrongKey.drain();
    rows = await rowsOf(p.userId);
    assert.equal(rows[2]!.status, 'failed');
    assert.match(rows[2]!.last_error ?? '', /403.*AuthError.*signature/);
    assert.equal(api.accepted.length, 0);
  });
});
