import assert from 'node:assert/strict';
import { test } from 'node:test';
import Fastify from 'fastify';
import { loadConfig, trustProxyOption } from '../../src/config.ts';

/** The client address a node sees for a request from `from` carrying `forwardedFor`, with TRUST_PROXY = `setting`. */
async function clientIp(setting: string, from: string, forwardedFor?: string): Promise<string> {
  const app = Fastify({ trustProxy: trustProxyOption(loadConfig({ TRUST_PROXY: setting }).TRUST_PROXY) });
  app.get('/', async (req) => ({ ip: req.ip }));
  const res = await app.inject({
    method: 'GET',
    url: '/',
    remoteAddress: from,
    headers: forwardedFor ? { 'x-forwarded-for': forwardedFor } : {},
  });
  await app.close();
  return (res.json() as { ip: string }).ip;
}

test('TRUST_PROXY: X-Forwarded-For is believed only from the load balancers named', async () => {
  // Off (the default): the header is ignored.
  assert.equal(await clientIp('false', '10.0.0.5', '198.51.100.7'), '10.0.0.5');
  // The load balancer's address (or its network): the client it saw.
  assert.equal(await clientIp('10.0.0.5', '10.0.0.5', '198.51.100.7'), '198.51.100.7');
  assert.equal(await clientIp('10.1.0.0/16, 10.0.0.5', '10.1.2.3', '198.51.100.7'), '198.51.100.7');
  // Anyone else sending the header cannot choose the address per-IP limits count against.
  assert.equal(await clientIp('10.0.0.5', '192.0.2.66', '198.51.100.7'), '192.0.2.66');
  // A client's own X-Forwarded-For, passed on by the load balancer: only the hop the load balancer added counts.
  assert.equal(await clientIp('10.0.0.5', '10.0.0.5', '203.0.113.1, 198.51.100.7'), '198.51.100.7');
  assert.equal(await clientIp('1', '10.0.0.5', '203.0.113.1, 198.51.100.7'), '198.51.100.7');
  assert.equal(await clientIp('2', '10.0.0.5', '203.0.113.1, 198.51.100.7'), '203.0.113.1');
  // true: every hop (only safe when the load balancer replaces the header).
  assert.equal(await clientIp('true', '10.0.0.5', '203.0.113.1, 198.51.100.7'), '203.0.113.1');
});

test('TRUST_PROXY: anything else is refused at start-up with a clear message', () => {
  for (const bad of ['yes', '10.0.0.300', '10.0.0.0/33', '::1/129', '0', '100', '10.0.0.5,,', 'host.example']) {
    assert.throws(() => loadConfig({ TRUST_PROXY: bad }), /TRUST_PROXY/, bad);
  }
  assert.deepEqual(loadConfig({ TRUST_PROXY: '::1, fd00::/8' }).TRUST_PROXY, ['::1', 'fd00::/8']);
});
