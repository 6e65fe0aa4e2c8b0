import assert from 'node:assert/strict';
import { test } from 'node:test';
import Fastify from 'fastify';
import { csvCell, csvLine, sendCsv } from '../../src/http/csv.ts';

test('a cell that a spreadsheet would read as a formula is written with a leading apostrophe', () => {
  for (const [value, written] of [
    ['=1+1', "'=1+1"],
    ['+44 7700 900000', "'+44 7700 900000"],
    ['-3', "'-3"],
    ['@SUM(A1)', "'@SUM(A1)"],
    ['\tTAB', "'\tTAB"],
    ['=HYPERLINK("http://x","y")', `"'=HYPERLINK(""http://x"",""y"")"`],
    ['plain', 'plain'],
    ['a,b', '"a,b"'],
    ['line\nbreak', '"line\nbreak"'],
    ['Siobhán O’Brien', 'Siobhán O’Brien'],
  ] as const) {
    assert.equal(csvCell(value), written, value);
  }
  assert.equal(csvCell(null), '');
  assert.equal(csvCell(42), '42');
  assert.equal(csvLine(['a', '=b', null]), "a,'=b,\r\n");
});

test('an export streams its rows, stops at its limit and says on its last line that it was cut', async () => {
  const app = Fastify();
  let pulled = 0;
  let ended: [number, boolean] | null = null;
  app.get('/export', async (_req, reply) => {
    async function* rows() {
      for (let i = 0; i < 1_000_000; i++) {
        pulled++;
        yield i;
      }
    }
    return sendCsv(reply, {
      filename: 'numbers.csv',
      header: ['n'],
      rows: rows(),
      cells: (n) => [n],
      limit: 5,
      done: async (written, cut) => {
        ended = [written, cut];
      },
    });
  });
  const res = await app.inject({ method: 'GET', url: '/export' });
  const lines = res.body
    .replace(/^\uFEFF/, '')
    .trim()
    .split('\r\n');
  assert.deepEqual(lines.slice(0, 6), ['n', '0', '1', '2', '3', '4']);
  assert.match(lines[6]!, /^Export cut at 5 rows: narrow the filters/);
  assert.equal(lines.length, 7);
  assert.ok(pulled <= 6, `read lazily: ${pulled} rows pulled of a million`);
  assert.deepEqual(ended, [5, true]);
  assert.match(String(res.headers['content-disposition']), /attachment; filename="numbers\.csv"/);
  await app.close();
});
