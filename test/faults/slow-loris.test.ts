import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, test } from 'node:test';
import { type Cluster, startCluster } from '../../scripts/cluster/cluster.ts';
import { createDatabase, ensurePostgres, log } from './support.ts';

/**
 * Slow-loris: a client sending its request headers a byte at a time, never finishing, to hold a connection (and, by
 * the thousand, all of them). HAProxy cuts it after `timeout http-request` (10 s) with a 408; a node
 * reached directly cuts it by itself (Fastify's requestTimeout, 30 s, enforced by Node's connection check every 30 s),
 * answering 408 in the error shape.
 */
let cluster: Cluster;
let db: Awaited<ReturnType<typeof createDatabase>>;

before(async () => {
  await ensurePostgres();
  db = await createDatabase('f_loris');
  cluster = await startCluster({
    nodes: 1,
    basePort: 3380,
    databaseUrl: db.url,
    schema: 'opencis',
    redisUrl: null,
    log,
  });
});
after(async () => {
  await cluster?.stop();
  await db?.drop();
});

/** Trickles request headers one byte a second; resolves with what the server sent and when it closed. */
function trickle(
  port: number,
  limitSeconds: number,
): Promise<{ seconds: number; response: string; closedByServer: boolean }> {
  return new Promise((resolve) => {
    const started = performance.now();
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const head = `GET /health/live HTTP/1.1\r\nHost: localhost\r\nX-Slow: ${'a'.repeat(500)}`;
    let i = 0;
    let closedByServer = true;
    const timer = setInterval(() => {
      if (i < head.length && !socket.destroyed) socket.write(head[i++]!);
    }, 1_000);
    const give = setTimeout(() => {
      closedByServer = false;
      socket.destroy();
    }, limitSeconds * 1000);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearInterval(timer);
      clearTimeout(give);
      resolve({
        seconds: (performance.now() - started) / 1000,
        response: Buffer.concat(chunks).toString('latin1'),
        closedByServer,
      });
    });
  });
}

test('slow-loris is cut off: by HAProxy in ~10 s (408), by a node alone within a minute (408 in the error shape)', async () => {
  const node = cluster.nodes[0]!;
  const [viaProxy, direct] = await Promise.all([
    trickle(Number(new URL(cluster.lbUrl).port), 30),
    trickle(node.port, 75),
  ]);
  log(`via HAProxy: closed after ${viaProxy.seconds.toFixed(1)} s: ${viaProxy.response.split('\r\n')[0]}`);
  log(`direct to the node: closed after ${direct.seconds.toFixed(1)} s: ${direct.response.split('\r\n')[0]}`);
  assert.ok(viaProxy.closedByServer && viaProxy.seconds < 15, 'HAProxy cuts the trickle within its 10 s');
  // HAProxy 2.6 answers a request that never finished arriving from its connection layer, with its built-in page:
  // `errorfile 408` is not used there (it is for 408s of whole requests). The status is what matters to a client.
  assert.match(viaProxy.response, /^HTTP\/1\.1 408/);
  assert.ok(direct.closedByServer, 'the node cuts the trickle by itself');
  assert.ok(direct.seconds <= 65, `the node held the trickle ${direct.seconds.toFixed(0)} s`);
  assert.match(direct.response, /^HTTP\/1\.1 408/);
  assert.match(direct.response, /"code":"request\.timeout"/);
});
