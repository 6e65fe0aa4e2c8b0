import { createHash, sign as cryptoSign, randomBytes } from 'node:crypto';
import { DOMImplementation, type Document, type Element, XMLSerializer } from '@xmldom/xmldom';
import { ExclusiveCanonicalization } from 'xml-crypto';
import type { AssertionSigningKey } from './signing-key.ts';

/**
 * The CIS1 role assertion (DOMAIN §8): a SAML 2.0 assertion naming the person (NameID = 12-digit user ID) and the
 * role profile they selected, with the same role data CIS2 puts in `nhsid_nrbac_roles`, signed with XML-DSig
 * (enveloped, exclusive c14n, RSA-SHA256, SHA-256 digests) by xml-crypto over a document built with a DOM, never by
 * string concatenation. OpenCIS only ever writes SAML; it parses none from outside.
 */
export const SAML_NS = 'urn:oasis:names:tc:SAML:2.0:assertion';
const MD_NS = 'urn:oasis:names:tc:SAML:2.0:metadata';
const DS_NS = 'http://www.w3.org/2000/09/xmldsig#';
const EXC_C14N = 'http://www.w3.org/2001/10/xml-exc-c14n#';
const RSA_SHA256 = 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256';
const SHA256 = 'http://www.w3.org/2001/04/xmlenc#sha256';
const ENVELOPED = 'http://www.w3.org/2000/09/xmldsig#enveloped-signature';
const BASIC_NAME_FORMAT = 'urn:oasis:names:tc:SAML:2.0:attrname-format:basic';
const UNSPECIFIED_NAME_ID = 'urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified';
/** SAML authentication context class for a smartcard with a PKI key (saml-authn-context-2.0-os §3.4.24). */
const SMARTCARD_PKI = 'urn:oasis:names:tc:SAML:2.0:ac:classes:SmartcardPKI';
/** How applications send a ticket: not a SAML binding, so named in OpenCIS's own URN space. */
export const TICKET_BINDING = 'urn:opencis:cis1:bindings:ticket-validation';
/** An assertion is good for immediate use only: applications validate the ticket again rather than keep it. */
export const ASSERTION_LIFETIME_MS = 5 * 60_000;

export interface RoleAssertionInput {
  issuer: string;
  audience: string;
  now: Date;
  sessionId: string;
  authenticatedAt: Date;
  sessionNotOnOrAfter: Date;
  /** Attribute name → values, in order. Empty lists are left out. */
  attributes: [name: string, values: readonly string[]][];
  userId: string;
}

/**
 * XML 1.0 cannot carry most control characters: such characters in stored text are dropped, not escaped. Line ends
 * are normalised to LF as an XML parser would (XML 1.0 §2.11), so what is signed is what a relying party reads back.
 */
function xmlText(value: string): string {
  return value.replace(/[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu, '').replace(/\r\n?/g, '\n');
}

function instant(d: Date): string {
  // SAML wants UTC xs:dateTime; whole seconds, as most SAML libraries print and compare.
  return `${d.toISOString().slice(0, 19)}Z`;
}

/** A fresh assertion ID: 160 random bits (saml-core §1.3.4), starting with a letter-like character as xs:ID needs. */
export function newAssertionId(): string {
  return `_${randomBytes(20).toString('hex')}`;
}

function appendElement(
  parent: Element,
  ns: string,
  qualifiedName: string,
  attrs: Record<string, string> = {},
  text?: string,
): Element {
  const doc = parent.ownerDocument!;
  const child = doc.createElementNS(ns, qualifiedName);
  for (const [k, v] of Object.entries(attrs)) child.setAttribute(k, xmlText(v));
  // No empty text node: a parser makes none for <x></x>, and canonicalisation must see the same tree.
  const content = text === undefined ? '' : xmlText(text);
  if (content !== '') child.appendChild(doc.createTextNode(content));
  parent.appendChild(child);
  return child;
}

/** Builds the unsigned assertion as a DOM (exported for the signing tests, which compare with xml-crypto's signer). */
export function buildAssertionDocument(input: RoleAssertionInput, id: string): Document {
  const doc = new DOMImplementation().createDocument(SAML_NS, 'saml:Assertion', null);
  const root = doc.documentElement!;
  const el = (parent: Element, name: string, attrs?: Record<string, string>, text?: string) =>
    appendElement(parent, SAML_NS, `saml:${name}`, attrs, text);
  const notOnOrAfter = instant(new Date(input.now.getTime() + ASSERTION_LIFETIME_MS));
  root.setAttribute('ID', id);
  root.setAttribute('Version', '2.0');
  root.setAttribute('IssueInstant', instant(input.now));
  el(root, 'Issuer', {}, input.issuer);
  const subject = el(root, 'Subject');
  el(subject, 'NameID', { Format: UNSPECIFIED_NAME_ID }, input.userId);
  const confirmation = el(subject, 'SubjectConfirmation', { Method: 'urn:oasis:names:tc:SAML:2.0:cm:bearer' });
  el(confirmation, 'SubjectConfirmationData', { NotOnOrAfter: notOnOrAfter });
  const conditions = el(root, 'Conditions', { NotBefore: instant(input.now), NotOnOrAfter: notOnOrAfter });
  el(el(conditions, 'AudienceRestriction'), 'Audience', {}, input.audience);
  const authn = el(root, 'AuthnStatement', {
    AuthnInstant: instant(input.authenticatedAt),
    SessionIndex: input.sessionId,
    SessionNotOnOrAfter: instant(input.sessionNotOnOrAfter),
  });
  el(el(authn, 'AuthnContext'), 'AuthnContextClassRef', {}, SMARTCARD_PKI);
  const statement = el(root, 'AttributeStatement');
  for (const [name, values] of input.attributes) {
    if (values.length === 0) continue;
    const attribute = el(statement, 'Attribute', { Name: name, NameFormat: BASIC_NAME_FORMAT });
    for (const value of values) el(attribute, 'AttributeValue', {}, value);
  }
  return doc;
}

/** xml-crypto's exclusive canonicalisation (the canonicaliser SignedXml itself uses); stateless, so shared. */
const exclusiveC14n = new ExclusiveCanonicalization();

/**
 * Signs the assertion in place: an enveloped XML-DSig signature (saml-core §5.4) after Issuer (§2.3.3), with one
 * reference to the Assertion by its ID, transforms enveloped-signature and exclusive c14n, SHA-256 digest, RSA-SHA256
 * signature over the exclusive-c14n SignedInfo, and the signing certificate in KeyInfo.
 *
 * This is what xml-crypto's SignedXml.computeSignature produces for the same document and options, byte for byte
 * (test/cis1/cis1.signing.test.ts signs the same documents both ways and compares), without its overheads:
 * serialising the DOM to text and parsing it back, a deep clone of the document per canonicalisation, XPath
 * searches of the whole document, and parsing the Signature element from a string. Canonicalisation is
 * xml-crypto's ExclusiveCanonicalization; nothing here canonicalises by hand. The digest is computed before the
 * Signature element is inserted, so the enveloped-signature transform (which removes it) has nothing to remove —
 * exactly as in SignedXml, which also digests before inserting the signature.
 */
export function signAssertionDocument(doc: Document, key: AssertionSigningKey): string {
  const root = doc.documentElement!;
  const id = root.getAttribute('ID');
  const issuer = root.firstChild;
  if (!id || !issuer || issuer.nodeType !== issuer.ELEMENT_NODE) throw new Error('assertion without ID or Issuer');
  const digest = createHash('sha256').update(exclusiveC14n.process(root, {}).toString()).digest('base64');

  const signature = doc.createElementNS(DS_NS, 'ds:Signature');
  root.insertBefore(signature, issuer.nextSibling);
  const ds = (parent: Element, name: string, attrs?: Record<string, string>, text?: string) =>
    appendElement(parent, DS_NS, `ds:${name}`, attrs, text);
  const signedInfo = ds(signature, 'SignedInfo');
  ds(signedInfo, 'CanonicalizationMethod', { Algorithm: EXC_C14N });
  ds(signedInfo, 'SignatureMethod', { Algorithm: RSA_SHA256 });
  const reference = ds(signedInfo, 'Reference', { URI: `#${id}` });
  const transforms = ds(reference, 'Transforms');
  ds(transforms, 'Transform', { Algorithm: ENVELOPED });
  ds(transforms, 'Transform', { Algorithm: EXC_C14N });
  ds(reference, 'DigestMethod', { Algorithm: SHA256 });
  ds(reference, 'DigestValue', {}, digest);
  const canonicalSignedInfo = exclusiveC14n.process(signedInfo, {}).toString();
  ds(
    signature,
    'SignatureValue',
    {},
    cryptoSign('sha256', Buffer.from(canonicalSignedInfo), key.privateKey).toString('base64'),
  );
  const x509Data = ds(ds(signature, 'KeyInfo'), 'X509Data');
  ds(x509Data, 'X509Certificate', {}, certificateBase64(key));
  return new XMLSerializer().serializeToString(doc);
}

const certificateTexts = new WeakMap<AssertionSigningKey, string>();

function certificateBase64(key: AssertionSigningKey): string {
  let text = certificateTexts.get(key);
  if (text === undefined) {
    text = key.certificateDer.toString('base64');
    certificateTexts.set(key, text);
  }
  return text;
}

/** The signed assertion, with a fresh ID. */
export function signedRoleAssertion(input: RoleAssertionInput, key: AssertionSigningKey): string {
  return signAssertionDocument(buildAssertionDocument(input, newAssertionId()), key);
}

/** IdP metadata: the entity, its signing certificate and where applications validate tickets. */
export function idpMetadata(input: { entityId: string; validateUrl: string; key: AssertionSigningKey }): string {
  const doc = new DOMImplementation().createDocument(MD_NS, 'md:EntityDescriptor', null);
  const root = doc.documentElement!;
  root.setAttribute('entityID', input.entityId);
  const md = (parent: Element, name: string, attrs: Record<string, string> = {}, text?: string): Element => {
    const child = doc.createElementNS(MD_NS, `md:${name}`);
    for (const [k, v] of Object.entries(attrs)) child.setAttribute(k, v);
    if (text !== undefined) child.appendChild(doc.createTextNode(text));
    parent.appendChild(child);
    return child;
  };
  const idp = md(root, 'IDPSSODescriptor', {
    protocolSupportEnumeration: 'urn:oasis:names:tc:SAML:2.0:protocol',
    WantAuthnRequestsSigned: 'false',
  });
  const keyDescriptor = md(idp, 'KeyDescriptor', { use: 'signing' });
  const keyInfo = keyDescriptor.appendChild(doc.createElementNS(DS_NS, 'ds:KeyInfo'));
  const x509Data = keyInfo.appendChild(doc.createElementNS(DS_NS, 'ds:X509Data'));
  const certificate = x509Data.appendChild(doc.createElementNS(DS_NS, 'ds:X509Certificate'));
  certificate.appendChild(doc.createTextNode(input.key.certificateDer.toString('base64')));
  md(idp, 'NameIDFormat', {}, UNSPECIFIED_NAME_ID);
  md(idp, 'SingleSignOnService', { Binding: TICKET_BINDING, Location: input.validateUrl });
  return `<?xml version="1.0" encoding="UTF-8"?>\n${new XMLSerializer().serializeToString(doc)}`;
}
