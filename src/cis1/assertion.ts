import { randomBytes } from 'node:crypto';
import { DOMImplementation, type Element, XMLSerializer } from '@xmldom/xmldom';
import { SignedXml } from 'xml-crypto';
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

/** XML 1.0 cannot carry most control characters: such characters in stored text are dropped, not escaped. */
function xmlText(value: string): string {
  return value.replace(/[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu, '');
}

function instant(d: Date): string {
  // SAML wants UTC xs:dateTime; whole seconds, as most SAML libraries print and compare.
  return `${d.toISOString().slice(0, 19)}Z`;
}

/** Builds the unsigned assertion. */
function buildAssertion(input: RoleAssertionInput): string {
  const doc = new DOMImplementation().createDocument(SAML_NS, 'saml:Assertion', null);
  const root = doc.documentElement!;
  const el = (parent: Element, name: string, attrs: Record<string, string> = {}, text?: string): Element => {
    const child = doc.createElementNS(SAML_NS, `saml:${name}`);
    for (const [k, v] of Object.entries(attrs)) child.setAttribute(k, xmlText(v));
    if (text !== undefined) child.appendChild(doc.createTextNode(xmlText(text)));
    parent.appendChild(child);
    return child;
  };
  const notOnOrAfter = instant(new Date(input.now.getTime() + ASSERTION_LIFETIME_MS));
  root.setAttribute('ID', `_${randomBytes(20).toString('hex')}`);
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
  return new XMLSerializer().serializeToString(doc);
}

const keyInfoContents = new WeakMap<AssertionSigningKey, string>();

function keyInfoContent(key: AssertionSigningKey): string {
  let content = keyInfoContents.get(key);
  if (content === undefined) {
    content = `<ds:X509Data><ds:X509Certificate>${key.certificateDer.toString('base64')}</ds:X509Certificate></ds:X509Data>`;
    keyInfoContents.set(key, content);
  }
  return content;
}

/** The signed assertion: the signature sits after Issuer (saml-core §2.3.3) and covers the whole Assertion by its ID. */
export function signedRoleAssertion(input: RoleAssertionInput, key: AssertionSigningKey): string {
  const signer = new SignedXml({
    privateKey: key.privateKey,
    signatureAlgorithm: RSA_SHA256,
    canonicalizationAlgorithm: EXC_C14N,
    // The certificate's KeyInfo is the same for every assertion: built once per key, not parsed on every signature.
    getKeyInfoContent: () => keyInfoContent(key),
  });
  signer.addReference({
    xpath: '/*',
    digestAlgorithm: SHA256,
    transforms: [ENVELOPED, EXC_C14N],
  });
  signer.computeSignature(buildAssertion(input), {
    prefix: 'ds',
    // Issuer is always the first child (built above).
    location: { reference: '/*/*[1]', action: 'after' },
  });
  return signer.getSignedXml();
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
