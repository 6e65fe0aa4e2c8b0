import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { test } from 'node:test';
import { DOMParser, XMLSerializer } from '@xmldom/xmldom';
import { SignedXml } from 'xml-crypto';
import {
  buildAssertionDocument,
  newAssertionId,
  type RoleAssertionInput,
  signAssertionDocument,
  signedRoleAssertion,
} from '../../src/cis1/assertion.ts';
import type { AssertionSigningKey } from '../../src/cis1/signing-key.ts';

/**
 * The CIS1 assertion signer (src/cis1/assertion.ts) builds the assertion as a DOM and signs it with xml-crypto's
 * exclusive canonicalisation, without SignedXml.computeSignature's text round trips. These tests hold it to
 * xml-crypto's own signer: the same document signed both ways must be the same bytes (RSA PKCS#1 v1.5 signatures are
 * deterministic), including for text an XML parser would change (line ends, markup characters, control characters,
 * characters outside the BMP, empty values). No database, so a unit test, beside the CIS1 tests it belongs with.
 */
const RSA_SHA256 = 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256';
const EXC_C14N = 'http://www.w3.org/2001/10/xml-exc-c14n#';
const SHA256 = 'http://www.w3.org/2001/04/xmlenc#sha256';
const ENVELOPED = 'http://www.w3.org/2000/09/xmldsig#enveloped-signature';

const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
// A stand-in certificate body: only its base64 text is copied into KeyInfo; the verifier below pins the public key.
const key: AssertionSigningKey = {
  keyId: 'test',
  privateKey,
  certificateDer: Buffer.from('not a real certificate, only bytes for KeyInfo'),
  certificatePem: '',
  notAfter: new Date('2030-01-01T00:00:00Z'),
};
const publicPem = (publicKey as KeyObject).export({ type: 'spki', format: 'pem' }).toString();

function input(attributes: RoleAssertionInput['attributes']): RoleAssertionInput {
  return {
    issuer: 'https://opencis.example/cis1',
    audience: 'legacy-pas',
    now: new Date('2026-11-26T09:00:00.750Z'),
    sessionId: 'AAAAAAAAAAAAAAAAAAAAAA',
    authenticatedAt: new Date('2026-11-26T08:59:00Z'),
    sessionNotOnOrAfter: new Date('2026-11-26T20:59:00Z'),
    userId: '555000000001',
    attributes,
  };
}

/** xml-crypto's SignedXml.computeSignature with the options OpenCIS signs with: the reference signer. */
function signedByXmlCrypto(unsigned: string): string {
  const signer = new SignedXml({
    privateKey,
    signatureAlgorithm: RSA_SHA256,
    canonicalizationAlgorithm: EXC_C14N,
    getKeyInfoContent: () =>
      `<ds:X509Data><ds:X509Certificate>${key.certificateDer.toString('base64')}</ds:X509Certificate></ds:X509Data>`,
  });
  signer.addReference({ xpath: '/*', digestAlgorithm: SHA256, transforms: [ENVELOPED, EXC_C14N] });
  signer.computeSignature(unsigned, { prefix: 'ds', location: { reference: '/*/*[1]', action: 'after' } });
  return signer.getSignedXml();
}

function verifies(xml: string): boolean {
  const doc = new DOMParser().parseFromString(xml, 'application/xml');
  const signature = doc.getElementsByTagNameNS('http://www.w3.org/2000/09/xmldsig#', 'Signature')[0]!;
  const verifier = new SignedXml({ publicCert: publicPem, getCertFromKeyInfo: () => null });
  verifier.loadSignature(signature.toString());
  return verifier.checkSignature(xml);
}

const cases: [string, RoleAssertionInput['attributes']][] = [
  [
    'ordinary role data',
    [
      ['uid', ['555000000001']],
      ['name', ['Ada Lovelace']],
      ['role_code', ['S8000:G8000:R8001']],
      ['role_name', ['"Clinical":"Nursing":"Staff Nurse"']],
      ['activity_codes', ['B0380', 'B0825']],
      ['title', []],
    ],
  ],
  [
    'markup characters and quotes',
    [
      ['family_name', ['O’Brien & <Sons> "quoted" \'single\' ]]> a>b']],
      ['org_name', ['Guy’s & St Thomas’']],
    ],
  ],
  [
    'line ends, tabs and control characters',
    [
      ['name', ['line one\r\nline two\rline three\nline four\ttabbed']],
      ['notes', ['bell\u0007 null\u0000 escape\u001b form\u000c end']],
    ],
  ],
  [
    'empty values, whitespace and characters outside the BMP',
    [
      ['empty', ['']],
      ['spaces', ['   ', ' leading and trailing ']],
      ['emoji', ['🩺 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \uFFFE\uFFFF lone \uD800 surrogate']],
    ],
  ],
];

for (const [name, attributes] of cases) {
  test(`CIS1 assertion signer: ${name} — the same bytes as xml-crypto's SignedXml, and it verifies`, () => {
    const doc = buildAssertionDocument(input(attributes), newAssertionId());
    const unsigned = new XMLSerializer().serializeToString(doc);
    const reference = signedByXmlCrypto(unsigned);
    const ours = signAssertionDocument(doc, key);
    assert.equal(ours, reference);
    assert.ok(verifies(ours));
    // The check can fail: any change to the signed content breaks the signature.
    assert.ok(!verifies(ours.replace('legacy-pas', 'legacy-pat')));
  });
}

test('CIS1 assertion signer: every assertion has its own ID, and text reads back as given (line ends as LF)', () => {
  const a = signedRoleAssertion(input([['name', ['a\r\nb']]]), key);
  const b = signedRoleAssertion(input([['name', ['a\r\nb']]]), key);
  const idOf = (xml: string) => /ID="([^"]+)"/.exec(xml)![1];
  assert.notEqual(idOf(a), idOf(b));
  const values = new DOMParser()
    .parseFromString(a, 'application/xml')
    .getElementsByTagNameNS('urn:oasis:names:tc:SAML:2.0:assertion', 'AttributeValue');
  assert.equal(values[0]!.textContent, 'a\nb');
});
