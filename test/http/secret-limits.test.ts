import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RecentFailures } from '../../src/http/secret-limits.ts';

test('an address is looked up while its failures are recent, and forgotten after; the oldest go first when full', () => {
  const recent = new RecentFailures(1_000, 2);
  assert.equal(recent.has('a', 0), false);
  recent.add('a', 0);
  assert.equal(recent.has('a', 1_000), true);
  assert.equal(recent.has('a', 1_001), false, 'forgotten after keepMs');
  recent.add('a', 10);
  recent.add('b', 20);
  recent.add('a', 30); // a is now the newest
  recent.add('c', 40); // full: b, the oldest, goes
  assert.deepEqual(
    ['a', 'b', 'c'].map((k) => recent.has(k, 50)),
    [true, false, true],
  );
});
