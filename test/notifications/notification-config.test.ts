import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config.ts';
import { transportFromConfig } from '../../src/notifications/transports.ts';

const KEY = 'opencis_live-26785a09-ab16-4eb0-8407-a37497a57506-3d844edf-8d35-48ac-975b-e847b4f122b0';
const TEMPLATE = '5f0a8a0c-3a46-4bb0-9c8b-0b7b4f5c2d10';
const smtp = {
  NOTIFICATIONS_TRANSPORT: 'smtp',
  SMTP_HOST: 'mail.example.nhs.uk',
  SMTP_FROM: 'no-reply@example.nhs.uk',
};
const notify = { NOTIFICATIONS_TRANSPORT: 'notify', NOTIFY_API_KEY: KEY, NOTIFY_EMAIL_TEMPLATE_ID: TEMPLATE };

function problemsOf(env: Record<string, string>): string[] {
  try {
    transportFromConfig(loadConfig(env));
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems;
  }
  return [];
}

test('good SMTP and Notify settings start', () => {
  assert.deepEqual(problemsOf(smtp), []);
  assert.deepEqual(problemsOf({ ...smtp, SMTP_USER: 'opencis', SMTP_PASSWORD: 'secret', SMTP_PORT: '2525' }), []);
  assert.deepEqual(problemsOf({ ...smtp, SMTP_HOST: '127.0.0.1', SMTP_SECURITY: 'none' }), []);
  assert.deepEqual(problemsOf(notify), []);
  assert.deepEqual(
    problemsOf({ ...notify, NOTIFY_SMS_TEMPLATE_ID: TEMPLATE, NOTIFY_BASE_URL: 'http://127.0.0.1:9' }),
    [],
  );
});

test('bad SMTP settings stop start-up with a message naming the variable', () => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ NOTIFICATIONS_TRANSPORT: 'smtp', SMTP_FROM: 'a@b.nhs.uk' }, /^SMTP_HOST: required/],
    [{ NOTIFICATIONS_TRANSPORT: 'smtp', SMTP_HOST: 'mail.example.nhs.uk' }, /^SMTP_FROM: required/],
    [{ ...smtp, SMTP_USER: 'opencis' }, /^SMTP_PASSWORD: required with SMTP_USER/],
    [{ ...smtp, SMTP_PASSWORD: 'secret' }, /^SMTP_USER: required with SMTP_PASSWORD/],
    [{ ...smtp, SMTP_SECURITY: 'none' }, /^SMTP_SECURITY: none is allowed only to a relay on this machine/],
    [{ ...smtp, SMTP_SECURITY: 'ssl' }, /^SMTP_SECURITY:/],
    [{ ...smtp, SMTP_PORT: '0' }, /^SMTP_PORT:/],
    [{ ...smtp, SMTP_PORT: '70000' }, /^SMTP_PORT:/],
    [{ ...smtp, SMTP_PORT: 'smtp' }, /^SMTP_PORT:/],
    [{ ...smtp, SMTP_HOST: 'mail example' }, /^SMTP_HOST: must be a host name/],
    [{ ...smtp, SMTP_FROM: 'OpenCIS' }, /^SMTP_FROM: must be an address/],
    [{ ...smtp, SMTP_FROM: 'x@y.nhs.uk\r\nBcc: everyone@example.com' }, /^SMTP_FROM:/],
    [{ ...smtp, SMTP_CA_FILE: '/nonexistent/ca.pem' }, /^SMTP_CA_FILE: cannot be read \(ENOENT\)/],
    [{ ...smtp, NOTIFICATIONS_MAX_ATTEMPTS: '0' }, /^NOTIFICATIONS_MAX_ATTEMPTS:/],
    [{ ...smtp, NOTIFICATIONS_MAX_ATTEMPTS: '1000' }, /^NOTIFICATIONS_MAX_ATTEMPTS:/],
    [{ SMTP_HOST: 'mail.example.nhs.uk' }, /^NOTIFICATIONS_TRANSPORT: is file but SMTP_HOST set/],
    [{ NOTIFICATIONS_TRANSPORT: 'sendmail' }, /^NOTIFICATIONS_TRANSPORT:/],
  ];
  for (const [env, expected] of cases) {
    const problems = problemsOf(env);
    assert.ok(
      problems.some((p) => expected.test(p)),
      `${JSON.stringify(env)} → ${JSON.stringify(problems)}`,
    );
  }
  const notPem = join(tmpdir(), `opencis-not-a-ca-${process.pid}.pem`);
  writeFileSync(notPem, 'hello');
  assert.match(problemsOf({ ...smtp, SMTP_CA_FILE: notPem })[0]!, /^SMTP_CA_FILE: holds no PEM certificate/);
});

test('bad GOV.UK Notify settings stop start-up with a message naming the variable', () => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ NOTIFICATIONS_TRANSPORT: 'notify', NOTIFY_EMAIL_TEMPLATE_ID: TEMPLATE }, /^NOTIFY_API_KEY: required/],
    [{ ...notify, NOTIFY_API_KEY: 'not-a-key' }, /^NOTIFY_API_KEY: must be a GOV.UK Notify API key/],
    [{ ...notify, NOTIFY_API_KEY: `${KEY.slice(0, -1)}g` }, /^NOTIFY_API_KEY:/],
    [{ NOTIFICATIONS_TRANSPORT: 'notify', NOTIFY_API_KEY: KEY }, /^NOTIFY_EMAIL_TEMPLATE_ID: required/],
    [{ ...notify, NOTIFY_EMAIL_TEMPLATE_ID: 'welcome' }, /^NOTIFY_EMAIL_TEMPLATE_ID: must be a template ID/],
    [{ ...notify, NOTIFY_SMS_TEMPLATE_ID: '1234' }, /^NOTIFY_SMS_TEMPLATE_ID: must be a template ID/],
    [{ ...notify, NOTIFY_BASE_URL: 'http://api.notifications.service.gov.uk' }, /^NOTIFY_BASE_URL: must be https/],
    [{ ...notify, NOTIFY_BASE_URL: 'not a url' }, /^NOTIFY_BASE_URL:/],
    [{ NOTIFY_API_KEY: KEY }, /^NOTIFICATIONS_TRANSPORT: is file but NOTIFY_API_KEY set/],
    [{ ...smtp, NOTIFY_API_KEY: KEY }, /^NOTIFICATIONS_TRANSPORT: is smtp but NOTIFY_API_KEY set/],
  ];
  for (const [env, expected] of cases) {
    const problems = problemsOf(env);
    assert.ok(
      problems.some((p) => expected.test(p)),
      `${JSON.stringify(env)} → ${JSON.stringify(problems)}`,
    );
  }
});

test('the expiry-wave settings are checked too', () => {
  for (const [env, expected] of [
    [{ CARD_EXPIRY_SPREAD_DAYS: '-1' }, /^CARD_EXPIRY_SPREAD_DAYS:/],
    [{ CARD_EXPIRY_SPREAD_DAYS: '61' }, /^CARD_EXPIRY_SPREAD_DAYS:/],
    [{ CARD_EXPIRY_SPREAD_DAYS: '1.5' }, /^CARD_EXPIRY_SPREAD_DAYS:/],
    [{ CARD_EXPIRY_ALERT_PERCENT: '0' }, /^CARD_EXPIRY_ALERT_PERCENT:/],
    [{ CARD_EXPIRY_ALERT_PERCENT: '101' }, /^CARD_EXPIRY_ALERT_PERCENT:/],
  ] as const) {
    assert.ok(
      problemsOf(env).some((p) => expected.test(p)),
      JSON.stringify(env),
    );
  }
  assert.equal(loadConfig({}).CARD_EXPIRY_SPREAD_DAYS, 14);
  assert.equal(loadConfig({}).CARD_EXPIRY_ALERT_PERCENT, 5);
});
