import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { backend } from '../support/db.ts';
import { databaseDigest, REFUSAL_TABLES } from '../support/digest.ts';
import { startTestServer, type TestServer } from '../support/server.ts';
import { sourceFiles } from '../support/sources.ts';

/**
 * OpenCIS parses no XML from outside — proven, not promised (issue 15, acceptance 4: CIS1 XML, XXE, signature
 * wrapping, huge documents). It writes XML (the CIS1 SAML assertion and metadata, built as a DOM and serialised) and
 * reads none: so XXE, entity expansion, signature wrapping and XML bombs have nothing to attack. Two proofs:
 *
 * 1. the source: no module of src/ or bin/ imports an XML parser or signature verifier — @xmldom/xmldom only for
 *    building and serialising, xml-crypto only for canonicalising what OpenCIS itself built;
 * 2. the running app: an XML body (XXE whose external entity points at a listener here, a billion-laughs, a wrapped
 *    SAML response, 200 KB of nesting) to every POST route is refused before a handler runs, the listener is never
 *    called, and nothing is written.
 *
 * Already covered: the CIS1 routes refuse XML with 415 and audit it, a 10 MB body is refused unread
 * (cis1.security.test.ts); relying parties verifying OpenCIS's assertions refuse wrapping, tampering and DTDs
 * (cis1.security.test.ts, cis1.signing.test.ts).
 */
let s: TestServer;
let fetched = 0;
let listener: { url: string; close(): Promise<void> };

before(async () => {
  s = await startTestServer({ CARD_TRANSPORT_SO_PIN: '87654321' });
  const http = createServer((_req, res) => {
    fetched++;
    res.writeHead(200, { 'content-type': 'text/plain' }).end('secret');
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  listener = {
    url: `http://127.0.0.1:${(http.address() as AddressInfo).port}/entity`,
    close: () => new Promise((resolve) => http.close(() => resolve())),
  };
});
after(async () => {
  await listener?.close();
  await s?.close();
});

/** Every module OpenCIS runs, and what it imports from where. */
function imports(): { file: string; from: string; names: string }[] {
  const out: { file: string; from: string; names: string }[] = [];
  for (const file of [...sourceFiles('src', /\.(ts|js|mjs)$/), ...sourceFiles('bin', /\.(ts|js|mjs)$/)]) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/import\s+([^'";]*?)\s*from\s*['"]([^'"]+)['"]/g)) {
      out.push({ file, from: m[2]!, names: m[1]! });
    }
    for (const m of text.matchAll(/(?:import|require)\(\s*['"]([^'"]+)['"]\s*\)/g))
      out.push({ file, from: m[1]!, names: '*' });
  }
  return out;
}

test('the source: no module imports an XML parser or an XML signature verifier', () => {
  const all = imports();
  assert.ok(all.length > 200, `${all.length} imports read`);
  const PARSERS =
    /^(xml2js|fast-xml-parser|sax|saxes|libxmljs2?|xmldoc|xml-js|xmlbuilder2|txml|htmlparser2|xpath|@xmldom\/is-dom-node|samlify|passport-saml|@node-saml\/.*)$/;
  assert.deepEqual(
    all.filter((i) => PARSERS.test(i.from)),
    [],
  );
  const xmldom = all.filter((i) => i.from === '@xmldom/xmldom');
  for (const i of xmldom) {
    const names = i.names
      .replace(/type\s+/g, '')
      .replace(/[{}\s]/g, '')
      .split(',')
      .filter(Boolean);
    assert.deepEqual(
      names.filter((n) => !['DOMImplementation', 'Document', 'Element', 'XMLSerializer'].includes(n)),
      [],
      `${i.file} imports more of @xmldom/xmldom than it needs to build a document: ${i.names}`,
    );
  }
  for (const i of all.filter((x) => x.from === 'xml-crypto')) {
    assert.equal(i.names.replace(/\s/g, ''), '{ExclusiveCanonicalization}', `${i.file}: ${i.names}`);
  }
  for (const file of sourceFiles('src', /\.(ts|js|mjs)$/)) {
    const text = readFileSync(file, 'utf8');
    assert.doesNotMatch(text, /\bparseFromString\b|\bDOMParser\b|\bloadSignature\b|\bcheckSignature\b/, file);
  }
});

const XXE = () =>
  `<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "${listener.url}">]><r><ticket>&x;</ticket><client_id>&x;</client_id></r>`;
const LAUGHS = `<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "lol"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;"><!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">]><l>&e;</l>`;
const WRAPPED = `<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"><saml:Assertion ID="evil"><saml:Subject><saml:NameID>555000000011</saml:NameID></saml:Subject></saml:Assertion><ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:Reference URI="#good"/></ds:SignedInfo><ds:Object><saml:Assertion ID="good"/></ds:Object></ds:Signature></samlp:Response>`;
const DEEP = `<a>${'<b>'.repeat(20_000)}${'</b>'.repeat(20_000)}</a>`;

test(`[${backend}] the app: XML to every POST route is refused before any handler, no external entity is fetched, nothing is written`, async () => {
  const tree = s.app.printRoutes({ commonPrefix: false });
  const posts: string[] = [];
  const stack: { depth: number; path: string }[] = [];
  for (const line of tree.split('\n')) {
    const m = /^([│ ├└─\u00a0]*)(\S.*?) \(([^)]+)\)$/.exec(line);
    if (!m) continue;
    const depth = m[1]!.length;
    while (stack.length > 0 && stack.at(-1)!.depth >= depth) stack.pop();
    const path = `${stack.at(-1)?.path ?? ''}${m[2]}`;
    stack.push({ depth, path });
    if (m[3]!.split(', ').includes('POST')) posts.push(path.replace(/:[A-Za-z]+/g, '1').replace('*', 'x'));
  }
  assert.ok(posts.length > 60, `${posts.length} POST routes`);
  const digest = await databaseDigest(s.t.db, REFUSAL_TABLES);
  const failures: string[] = [];
  for (const path of [
    ...posts,
    '/oidc/access_token',
    '/oidc/introspect',
    '/oidc/token/revoke',
    '/oidc/connect/endSession',
  ]) {
    for (const [type, body] of [
      ['application/xml', XXE()],
      ['text/xml', LAUGHS],
      ['application/samlassertion+xml', WRAPPED],
      ['application/soap+xml', DEEP],
    ] as const) {
      const res = await s.app.inject({ method: 'POST', url: path, headers: { 'content-type': type }, payload: body });
      // 415 from OpenCIS's routes (no XML parser is registered anywhere; the OCSP responder takes only DER);
      // oidc-provider takes only form bodies (invalid_request), and has no route at the other paths under /oidc.
      const ok =
        (res.statusCode === 415 && /request\.unsupported_media_type/.test(res.body)) ||
        (path.startsWith('/oidc') && [400, 404].includes(res.statusCode) && /"invalid_request"/.test(res.body));
      if (!ok) failures.push(`${path} ${type} → ${res.statusCode} ${res.body.slice(0, 100)}`);
    }
  }
  assert.deepEqual(failures, []);
  assert.equal(fetched, 0, 'no external entity was ever resolved');
  assert.equal(await databaseDigest(s.t.db, REFUSAL_TABLES), digest);
});
