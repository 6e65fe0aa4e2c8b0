import { createHash } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import type { Sealer } from '../secrets/sealer.ts';
import type { Repositories } from '../storage/repositories/index.ts';
import {
  authoritySigningKey,
  type LoadedAuthority,
  loadAuthorities,
  REVOCATION_REASONS,
  type RevocationReason,
  wholeSeconds,
} from './ca.ts';

/**
 * The OCSP responder (RFC 6960), answering from the same database rows as the CRL and smartcard sign-in, so a
 * revocation shows at once. Responses are signed by the issuing CA itself (§2.6 allows it) with the CA certificate
 * embedded. Hostile input never throws: it gets a malformedRequest response.
 */

export const OCSP_MAX_REQUEST_BYTES = 65_536;
/** More CertIDs than any real client sends in one request; bounds the work one request can cause. */
const MAX_CERT_IDS = 32;
/** RFC 8954 §2.1: a nonce of 1–32 octets; allow room for its OCTET STRING wrapping and older clients. */
const MAX_NONCE_EXTENSION_BYTES = 128;
const VALIDITY_MS = 60 * 60_000;

const OID_BASIC_RESPONSE = '1.3.6.1.5.5.7.48.1.1';
const OID_NONCE = '1.3.6.1.5.5.7.48.1.2';
const HASHES: Record<string, string> = {
  '1.3.14.3.2.26': 'sha1',
  '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
};

/** RFC 6960 §4.2.1 OCSPResponseStatus. */
const STATUS = { successful: 0, malformedRequest: 1, internalError: 2, tryLater: 3, unauthorized: 6 } as const;
export type OcspResponseStatus = keyof typeof STATUS;

export interface OcspSource {
  repos: Repositories;
  sealer: Sealer;
}

/** An unsigned OCSPResponse carrying only an error status (malformedRequest, internalError, …). */
export function ocspErrorResponse(status: Exclude<OcspResponseStatus, 'successful'>): Buffer {
  const response = new pkijs.OCSPResponse({ responseStatus: new asn1js.Enumerated({ value: STATUS[status] }) });
  return Buffer.from(response.toSchema().toBER());
}

interface IssuerHashes {
  name: Buffer;
  key: Buffer;
}
const issuerHashes = new WeakMap<LoadedAuthority, Map<string, IssuerHashes>>();

function hashesOf(authority: LoadedAuthority, algorithm: string): IssuerHashes {
  let byAlgorithm = issuerHashes.get(authority);
  if (!byAlgorithm) {
    byAlgorithm = new Map();
    issuerHashes.set(authority, byAlgorithm);
  }
  let hashes = byAlgorithm.get(algorithm);
  if (!hashes) {
    hashes = {
      name: createHash(algorithm).update(authority.subjectDer).digest(),
      key: createHash(algorithm).update(authority.subjectPublicKey).digest(),
    };
    byAlgorithm.set(algorithm, hashes);
  }
  return hashes;
}

function parseRequest(der: Buffer): pkijs.OCSPRequest | null {
  if (der.length === 0 || der.length > OCSP_MAX_REQUEST_BYTES) return null;
  try {
    const asn = asn1js.fromBER(der);
    if (asn.offset === -1 || asn.offset !== der.length) return null;
    const request = new pkijs.OCSPRequest({ schema: asn.result });
    const count = request.tbsRequest.requestList.length;
    if (count === 0 || count > MAX_CERT_IDS) return null;
    return request;
  } catch {
    return null;
  }
}

/** Serial as lower-case hex without the sign octet DER adds to a positive number with its top bit set. */
function serialHex(serial: asn1js.Integer): string {
  let bytes = Buffer.from(serial.valueBlock.valueHexView);
  while (bytes.length > 1 && bytes[0] === 0) bytes = bytes.subarray(1);
  return bytes.toString('hex');
}

interface Question {
  certId: pkijs.CertID;
  authority: LoadedAuthority | null;
  serial: string;
}

interface StatusRow {
  serial: string;
  authority_id: string;
  status: 'valid' | 'revoked';
  revoked_at: Date | null;
  revocation_reason: RevocationReason | null;
}

function good(): asn1js.Primitive {
  return new asn1js.Primitive({ idBlock: { tagClass: 3, tagNumber: 0 } });
}

function unknown(): asn1js.Primitive {
  return new asn1js.Primitive({ idBlock: { tagClass: 3, tagNumber: 2 } });
}

function revoked(at: Date, reason: RevocationReason | null): asn1js.Constructed {
  const value: asn1js.AsnType[] = [new asn1js.GeneralizedTime({ valueDate: wholeSeconds(at) })];
  // As on the CRL, "unspecified" is left out rather than stated.
  if (reason && reason !== 'unspecified') {
    value.push(
      new asn1js.Constructed({
        idBlock: { tagClass: 3, tagNumber: 0 },
        value: [new asn1js.Enumerated({ value: REVOCATION_REASONS[reason] })],
      }),
    );
  }
  return new asn1js.Constructed({ idBlock: { tagClass: 3, tagNumber: 1 }, value });
}

/**
 * Answers a DER OCSPRequest with a DER OCSPResponse: good / revoked (time, reason) / unknown for each CertID (SHA-1,
 * SHA-256, SHA-384 or SHA-512 issuer hashes), the request's nonce echoed. Throws only when the database or signing
 * fails (the route answers internalError then).
 */
export async function ocspRespond(source: OcspSource, requestDer: Buffer, now: Date): Promise<Buffer> {
  const request = parseRequest(requestDer);
  if (!request) return ocspErrorResponse('malformedRequest');
  const nonce = request.tbsRequest.requestExtensions?.find((e) => e.extnID === OID_NONCE);
  if (nonce && nonce.extnValue.valueBlock.valueHexView.byteLength > MAX_NONCE_EXTENSION_BYTES) {
    return ocspErrorResponse('malformedRequest');
  }

  const authorities = await loadAuthorities(source.repos);
  if (authorities.length === 0) return ocspErrorResponse('unauthorized');

  const questions: Question[] = request.tbsRequest.requestList.map((r) => {
    const certId = r.reqCert;
    const algorithm = HASHES[certId.hashAlgorithm.algorithmId];
    const nameHash = Buffer.from(certId.issuerNameHash.valueBlock.valueHexView);
    const keyHash = Buffer.from(certId.issuerKeyHash.valueBlock.valueHexView);
    const match = algorithm
      ? authorities.find(({ authority }) => {
          const h = hashesOf(authority, algorithm);
          return h.name.equals(nameHash) && h.key.equals(keyHash);
        })
      : undefined;
    return { certId, authority: match?.authority ?? null, serial: serialHex(certId.serialNumber) };
  });
  // Signed by the CA the first recognised CertID names (the active CA when none is recognised); CertIDs of another
  // CA in the same request are answered unknown, as this signer cannot speak for them.
  const responder = questions.find((q) => q.authority)?.authority ?? authorities[0]!.authority;

  const asked = questions.filter((q) => q.authority === responder && /^[0-9a-f]{1,40}$/.test(q.serial));
  const statuses = new Map<string, StatusRow>();
  if (asked.length > 0) {
    const rows = (await source.repos.certificates.statusesOf(
      responder.id,
      asked.map((q) => q.serial),
    )) as StatusRow[];
    for (const row of rows) statuses.set(row.serial, row);
  }

  const thisUpdate = wholeSeconds(now);
  const nextUpdate = new Date(thisUpdate.getTime() + VALIDITY_MS);
  const responses = questions.map((q) => {
    const row = q.authority === responder ? statuses.get(q.serial) : undefined;
    const certStatus = !row
      ? unknown()
      : row.status === 'revoked' && row.revoked_at
        ? revoked(new Date(row.revoked_at), row.revocation_reason)
        : good();
    return new pkijs.SingleResponse({ certID: q.certId, certStatus, thisUpdate, nextUpdate });
  });

  const basic = new pkijs.BasicOCSPResponse({
    tbsResponseData: new pkijs.ResponseData({
      // byKey: SHA-1 of the responder's public key (RFC 6960 §4.2.1, ResponderID).
      responderID: new asn1js.OctetString({
        valueHex: createHash('sha1').update(responder.subjectPublicKey).digest(),
      }),
      producedAt: thisUpdate,
      responses,
      ...(nonce ? { responseExtensions: [nonce] } : {}),
    }),
    certs: [new pkijs.Certificate({ schema: asn1js.fromBER(responder.certificateDer).result })],
  });
  await basic.sign(await authoritySigningKey(responder, source.sealer), 'SHA-256');
  const response = new pkijs.OCSPResponse({
    responseStatus: new asn1js.Enumerated({ value: STATUS.successful }),
    responseBytes: new pkijs.ResponseBytes({
      responseType: OID_BASIC_RESPONSE,
      response: new asn1js.OctetString({ valueHex: basic.toSchema().toBER() }),
    }),
  });
  return Buffer.from(response.toSchema().toBER());
}
