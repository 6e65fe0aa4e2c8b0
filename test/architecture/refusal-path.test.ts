import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { relative, resolve } from 'node:path';
import { test } from 'node:test';
import { sourceFiles } from '../support/sources.ts';

/*
 * Issue 16, acceptance 4: one refusal path (deny → audit → error). A refusal is written to the audit trail by
 * src/services/refusals.ts only — `refuse`, `auditRefusal`, `recordUnaudited` — whichever door it came through. These
 * checks fail on the shapes a second path takes: an audit record of a refusal appended anywhere else, or a
 * hand-made "is this a refusal" test beside the one in refusals.ts.
 */
const SRC = resolve('src');

const files = sourceFiles().map((f) => ({ path: relative(SRC, f), text: readFileSync(f, 'utf8') }));

/** Audit actions that record a refusal (as the trail names them). */
const REFUSAL_ACTION = /action:[^,\n]*?(['`])[\w.]*(refused|\.failed)\1/;

/** Records that are events, not refusals by this server: each with its reason. */
const ALLOWED: Record<string, string> = {
  // The card agent reports a caller IT refused; the server records the report in the session's transaction.
  'cis1/sessions.ts': 'cis1.agent_request_refused',
  // A notification the provider could not deliver is a delivery failure, not a refusal.
  'services/notifications.ts': 'notification.failed',
  // An identity check's automated checks failing is the check's outcome, recorded with the check.
  'services/enrolment.ts': 'enrolment.checks_failed',
};

test('no audit record of a refusal is appended outside services/refusals.ts', () => {
  const offenders: string[] = [];
  for (const f of files) {
    if (f.path === 'services/refusals.ts') continue;
    // Each appendAudit(...) call, with the text up to its closing of the event (enough to see its action).
    for (const m of f.text.matchAll(/appendAudit\(/g)) {
      const call = f.text.slice(m.index, m.index + 400);
      const action = REFUSAL_ACTION.exec(call);
      if (!action) continue;
      const allowed = ALLOWED[f.path];
      if (allowed && call.includes(allowed)) continue;
      const line = f.text.slice(0, m.index).split('\n').length;
      offenders.push(`${f.path}:${line}: ${action[0]}`);
    }
  }
  assert.deepEqual(offenders, []);
});

test('the refusal records are written by the one path, and each door hands its refusals to it', () => {
  const text = (p: string) => files.find((f) => f.path === p)?.text ?? '';
  assert.match(text('services/ra/common.ts'), /auditRefusal\(/, 'RA actions');
  assert.match(text('cis1/refusals.ts'), /auditRefusal\(/, 'CIS1');
  assert.match(text('http/deps.ts'), /recordUnaudited\(/, 'the web doors (console, REST API, client registration)');
  assert.match(text('app.ts'), /installErrorHandling\(app, \{ recordRefusal: recordDoorRefusal \}\)/);
  assert.match(text('cli/database.ts'), /recordUnaudited\(/, 'the CLI');
  for (const p of [
    'services/webauthn.ts',
    'services/totp.ts',
    'services/cards/sign-in.ts',
    'services/upstream-links.ts',
  ]) {
    assert.match(
      text(p),
      /from '\.\.?\/(\.\.\/)?(services\/)?refusals\.ts'|from '\.\/refusals\.ts'|from '\.\.\/refusals\.ts'/,
      p,
    );
  }
});

test('"is this a refusal" is decided in one place', () => {
  const defs = files.filter((f) => /function isRefusal\(/.test(f.text)).map((f) => f.path);
  assert.deepEqual(defs, ['services/refusals.ts']);
});
