import assert from 'node:assert/strict';
import { test } from 'node:test';
import { dropRows, leaveClaims, leaveRow, rowKey, takeClaims, takeRow } from '../../src/oidc/read-together.ts';

const row = { payload: { kind: 'Grant' }, consumed_at: null, expires_at: null };

test('a row read together is taken once, only by its own request, and never after a write', () => {
  const request = {};
  const other = {};
  leaveRow(request, rowKey.id('Grant', 'g1'), row);
  leaveRow(request, rowKey.uid('Session', 'u1'), row);
  assert.equal(takeRow(other, rowKey.id('Grant', 'g1')), undefined, 'another request');
  assert.equal(takeRow(undefined, rowKey.id('Grant', 'g1')), undefined, 'outside a request');
  assert.equal(takeRow(request, rowKey.id('Session', 'g1')), undefined, 'another model');
  assert.equal(takeRow(request, rowKey.uid('Grant', 'g1')), undefined, 'by uid is not by id');
  assert.equal(takeRow(request, rowKey.id('Grant', 'g1')), row);
  assert.equal(takeRow(request, rowKey.id('Grant', 'g1')), undefined, 'once');
  dropRows(request);
  assert.equal(takeRow(request, rowKey.uid('Session', 'u1')), undefined, 'a write drops what is left');
});

test('claims read together are used only for the same person, day, grant and use, once; writes do not drop them', () => {
  const request = {};
  const state = { person: { user_id: '900000000001' } };
  leaveClaims(request, '900000000001', '2026-11-26', 'g1', 'userinfo', state);
  dropRows(request);
  assert.equal(takeClaims(request, '900000000002', '2026-11-26', 'g1', 'userinfo'), undefined);
  assert.equal(takeClaims(request, '900000000001', '2026-11-27', 'g1', 'userinfo'), undefined, 'past midnight');
  assert.equal(takeClaims(request, '900000000001', '2026-11-26', 'g2', 'userinfo'), undefined);
  assert.equal(takeClaims(request, '900000000001', '2026-11-26', 'g1', 'id_token'), undefined);
  assert.deepEqual(takeClaims(request, '900000000001', '2026-11-26', 'g1', 'userinfo'), { state });
  assert.equal(takeClaims(request, '900000000001', '2026-11-26', 'g1', 'userinfo'), undefined, 'once');
  // A null state (no such person) is an answer too.
  leaveClaims(request, '900000000003', '2026-11-26', null, 'id_token', null);
  assert.deepEqual(takeClaims(request, '900000000003', '2026-11-26', null, 'id_token'), { state: null });
});
