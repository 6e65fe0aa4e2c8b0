import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadConfig } from '../../src/config.ts';
import { addressRefusal, isPublicAddress, normaliseAddress, outboundPolicy } from '../../src/net/outbound.ts';

test('special-purpose addresses are not public, in every IPv4, IPv6 and IPv4-mapped form', () => {
  const notPublic = [
    '127.0.0.1',
    '127.255.255.254',
    '0.0.0.0',
    '0.1.2.3',
    '10.0.0.1',
    '100.64.0.1',
    '100.127.255.255',
    '169.254.169.254',
    '172.16.0.1',
    '172.31.255.255',
    '192.0.0.8',
    '192.0.2.1',
    '192.88.99.1',
    '192.168.0.1',
    '198.18.0.1',
    '198.51.100.7',
    '203.0.113.9',
    '224.0.0.251',
    '239.255.255.250',
    '240.0.0.1',
    '255.255.255.255',
    '::',
    '::1',
    '[::1]',
    '::ffff:127.0.0.1',
    '::ffff:7f00:1',
    '0:0:0:0:0:ffff:a9fe:a9fe',
    '::ffff:10.1.2.3',
    '::7f00:1', // IPv4-compatible
    '::ffff:0:7f00:1', // IPv4-translated
    '64:ff9b::7f00:1', // NAT64
    '2002:7f00:1::1', // 6to4 of 127.0.0.1
    '2001::1', // Teredo
    '2001:db8::1',
    '3fff::1',
    'fc00::1',
    'fd12:3456::1',
    'fe80::1',
    'fec0::1',
    'ff02::1',
    '100::1',
    '4000::1', // outside global unicast
    'not-an-address',
  ];
  for (const a of notPublic) assert.equal(isPublicAddress(a), false, a);
  for (const a of ['8.8.8.8', '1.1.1.1', '100.63.255.255', '172.32.0.1', '2606:4700:4700::1111', '::ffff:8.8.8.8']) {
    assert.equal(isPublicAddress(a), true, a);
  }
});

test('IPv4-mapped addresses are checked as the IPv4 address they map to', () => {
  assert.deepEqual(normaliseAddress('::ffff:7f00:1'), { address: '127.0.0.1', family: 4 });
  assert.deepEqual(normaliseAddress('[::FFFF:127.0.0.1]'), { address: '127.0.0.1', family: 4 });
  assert.deepEqual(normaliseAddress('2606:4700:4700:0:0:0:0:1111'), { address: '2606:4700:4700::1111', family: 6 });
});

test('OUTBOUND_ALLOWED_RANGES lets the listed ranges through; plain http only with OUTBOUND_ALLOW_HTTP, only to them', () => {
  const policy = outboundPolicy('10.20.0.0/16, 127.0.0.1, fd00:20::/48', false);
  assert.equal(addressRefusal(policy, '10.20.5.5', 'https:'), null);
  assert.equal(addressRefusal(policy, '::ffff:10.20.5.5', 'https:'), null);
  assert.equal(addressRefusal(policy, '127.0.0.1', 'https:'), null);
  assert.equal(addressRefusal(policy, 'fd00:20::9', 'https:'), null);
  assert.match(addressRefusal(policy, '10.21.0.1', 'https:') ?? '', /not a public address/);
  assert.match(addressRefusal(policy, '127.0.0.2', 'https:') ?? '', /not a public address/);
  assert.match(addressRefusal(policy, '10.20.5.5', 'http:') ?? '', /plain http/);
  const withHttp = outboundPolicy('10.20.0.0/16', true);
  assert.equal(addressRefusal(withHttp, '10.20.5.5', 'http:'), null);
  assert.match(addressRefusal(withHttp, '8.8.8.8', 'http:') ?? '', /plain http/, 'http never to the internet');
  assert.throws(() => outboundPolicy('10.20.0.0/33', false), /not an address or CIDR/);
  assert.throws(() => outboundPolicy('example.com', false), /not an address or CIDR/);
});

test('a bad OUTBOUND_ALLOWED_RANGES or OUTBOUND_ALLOW_HTTP stops start-up with a message naming it', () => {
  assert.throws(() => loadConfig({ OUTBOUND_ALLOWED_RANGES: '10.0.0.0/8,intranet' }), /OUTBOUND_ALLOWED_RANGES/);
  assert.throws(() => loadConfig({ OUTBOUND_ALLOW_HTTP: 'yes' }), /OUTBOUND_ALLOW_HTTP/);
  const c = loadConfig({ OUTBOUND_ALLOWED_RANGES: '10.0.0.0/8,::1', OUTBOUND_ALLOW_HTTP: 'true' });
  assert.equal(c.OUTBOUND_ALLOWED_RANGES, '10.0.0.0/8,::1');
  assert.equal(c.OUTBOUND_ALLOW_HTTP, true);
});
