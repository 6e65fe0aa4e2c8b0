// @peculiar/x509 needs reflect-metadata loaded before it (STACK.md).
import 'reflect-metadata';
import { createHash, generateKeyPairSync, KeyObject, randomBytes, sign, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import type { AuthenticationResponseJSON, RegistrationResponseJSON } from '@simplewebauthn/server';
import { isoCBOR } from '@simplewebauthn/server/helpers';

/**
 * A software WebAuthn authenticator for tests: what a browser plus a security key or passkey provider would return to
 * `navigator.credentials.create()` / `.get()`, built by hand (ES256 keys, CBOR, COSE) so tests can also forge every
 * part of a response. Synchronous, so a benchmark can drive it in a tight loop.
 */

/** Authenticator-data flags (WebAuthn §6.1). */
export const FLAG = { UP: 0x01, UV: 0x04, BE: 0x08, BS: 0x10, AT: 0x40, ED: 0x80 } as const;

export const ZERO_AAGUID = '00000000-0000-0000-0000-000000000000';

/** The parts of PublicKeyCredentialCreationOptionsJSON an authenticator uses. */
export interface CreationOptionsLike {
  challenge: string;
  rp: { id?: string; name?: string };
  user: { id: string; name?: string; displayName?: string };
  excludeCredentials?: readonly { id: string }[];
}

/** The parts of PublicKeyCredentialRequestOptionsJSON an authenticator uses. */
export interface RequestOptionsLike {
  challenge: string;
  rpId?: string;
  allowCredentials?: readonly { id: string }[];
}

/** A packed attestation: the attestation key and its certificate chain (leaf first, DER), plus the root that signed it. */
export interface PackedAttestation {
  privateKey: KeyObject;
  x5c: Uint8Array[];
  rootPem: string;
}

export interface SoftwareCredential {
  /** base64url credential ID */
  id: string;
  rawId: Uint8Array;
  rpId: string;
  /** base64url user handle (the `user.id` given at registration) */
  userHandle: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
  signCount: number;
}

export interface AuthenticatorOptions {
  /** Model AAGUID (UUID form). Default all zeros. */
  aaguid?: string;
  /** Backup eligible (a synced passkey). Also sets backed up unless `backedUp` says otherwise. */
  backupEligible?: boolean;
  backedUp?: boolean;
  /** Attestation to make at registration: 'none' (default) or packed with this key and chain. */
  attestation?: PackedAttestation;
  /** 'increment' (default): the counter goes up by one on every assertion; 'zero': always 0, as many passkeys do. */
  counter?: 'increment' | 'zero';
  transports?: string[];
  attachment?: 'platform' | 'cross-platform';
}

/** Anything in a ceremony a test may want to forge. */
export interface CeremonyOverrides {
  origin?: string;
  rpId?: string;
  /** Replaces the whole flags byte. */
  flags?: number;
  signCount?: number;
  challenge?: string;
  type?: string;
  crossOrigin?: boolean;
  /** Extra members in clientDataJSON (e.g. topOrigin). */
  clientData?: Record<string, unknown>;
}

export interface RegisterOverrides extends CeremonyOverrides {
  /** Attestation format; 'none' drops any attestation the authenticator has. */
  fmt?: 'none' | 'packed';
  aaguid?: string;
  /** COSE algorithm written into the credential public key. */
  alg?: number;
  /** Use this raw credential ID (e.g. one already registered). */
  rawId?: Uint8Array;
  /** Sign a packed attestation with this key instead of the attestation key. */
  attestationKey?: KeyObject;
  /** Ignore excludeCredentials (a browser would refuse). */
  ignoreExclude?: boolean;
}

export interface AuthenticateOverrides extends CeremonyOverrides {
  /** Which of this authenticator's credentials to use (base64url ID). Default: the first allowed, else the newest. */
  credential?: string;
  /** Claim this credential ID in id/rawId (the signature is still made with the chosen credential's key). */
  claimId?: string;
  /** Sign with this key instead of the credential's. */
  privateKey?: KeyObject;
  /** A different user handle; null leaves it out. */
  userHandle?: string | null;
  /** Do not advance the stored counter (to replay the same value later). */
  keepCounter?: boolean;
}

const b64url = (b: Uint8Array | Buffer): string => Buffer.from(b).toString('base64url');
const sha256 = (b: Uint8Array | string): Buffer => createHash('sha256').update(b).digest();

function uuidBytes(uuid: string): Buffer {
  const hex = uuid.replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new Error(`not a UUID: ${uuid}`);
  return Buffer.from(hex, 'hex');
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

/** COSE_Key for an EC2 P-256 public key (RFC 9053): {1: 2, 3: alg, -1: 1, -2: x, -3: y}. */
export function coseEc2PublicKey(publicKey: KeyObject, alg = -7): Uint8Array {
  const jwk = publicKey.export({ format: 'jwk' });
  if (!jwk.x || !jwk.y) throw new Error('not an EC key');
  return isoCBOR.encode(
    new Map<number, number | Uint8Array>([
      [1, 2],
      [3, alg],
      [-1, 1],
      [-2, new Uint8Array(Buffer.from(jwk.x, 'base64url'))],
      [-3, new Uint8Array(Buffer.from(jwk.y, 'base64url'))],
    ]),
  );
}

export function newEs256Key(): { privateKey: KeyObject; publicKey: KeyObject } {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' });
}

export function clientDataJSON(fields: Record<string, unknown>): string {
  return b64url(Buffer.from(JSON.stringify(fields), 'utf8'));
}

export class SoftwareAuthenticator {
  readonly credentials: SoftwareCredential[] = [];
  readonly aaguid: string;
  readonly backupEligible: boolean;
  readonly backedUp: boolean;
  readonly attestation: PackedAttestation | undefined;
  private readonly counterMode: 'increment' | 'zero';
  private readonly transports: string[];
  private readonly attachment: 'platform' | 'cross-platform';

  constructor(options: AuthenticatorOptions = {}) {
    this.aaguid = options.aaguid ?? ZERO_AAGUID;
    this.backupEligible = options.backupEligible ?? false;
    this.backedUp = options.backedUp ?? this.backupEligible;
    this.attestation = options.attestation;
    this.counterMode = options.counter ?? 'increment';
    this.transports = options.transports ?? (this.backupEligible ? ['hybrid', 'internal'] : ['usb']);
    this.attachment = options.attachment ?? (this.backupEligible ? 'platform' : 'cross-platform');
  }

  private baseFlags(): number {
    return FLAG.UP | FLAG.UV | (this.backupEligible ? FLAG.BE : 0) | (this.backedUp ? FLAG.BS : 0);
  }

  /** navigator.credentials.create(): a new ES256 credential and its attestation. */
  register(options: CreationOptionsLike, origin: string, o: RegisterOverrides = {}): RegistrationResponseJSON {
    const rpId = options.rp.id ?? new URL(origin).hostname;
    if (!o.ignoreExclude) {
      const excluded = new Set((options.excludeCredentials ?? []).map((c) => c.id));
      if (this.credentials.some((c) => excluded.has(c.id))) {
        throw new Error('InvalidStateError: the authenticator already holds an excluded credential');
      }
    }
    const rawId = o.rawId ?? new Uint8Array(randomBytes(32));
    const { privateKey, publicKey } = newEs256Key();
    const cred: SoftwareCredential = {
      id: b64url(rawId),
      rawId,
      rpId,
      userHandle: options.user.id,
      privateKey,
      publicKey,
      signCount: 0,
    };
    const signCount = o.signCount ?? 0;
    const idLen = Buffer.alloc(2);
    idLen.writeUInt16BE(rawId.length);
    const authData = Buffer.concat([
      sha256(o.rpId ?? rpId),
      Buffer.from([o.flags ?? this.baseFlags() | FLAG.AT]),
      u32(signCount),
      uuidBytes(o.aaguid ?? this.aaguid),
      idLen,
      rawId,
      coseEc2PublicKey(publicKey, o.alg ?? -7),
    ]);
    const cdj = clientDataJSON({
      type: o.type ?? 'webauthn.create',
      challenge: o.challenge ?? options.challenge,
      origin: o.origin ?? origin,
      crossOrigin: o.crossOrigin ?? false,
      ...o.clientData,
    });
    const fmt = o.fmt ?? (this.attestation ? 'packed' : 'none');
    let attStmt: Map<string, number | Uint8Array | Uint8Array[]>;
    if (fmt === 'packed') {
      const signer = o.attestationKey ?? this.attestation?.privateKey ?? privateKey;
      const sig = sign('sha256', Buffer.concat([authData, sha256(Buffer.from(cdj, 'base64url'))]), signer);
      attStmt = new Map<string, number | Uint8Array | Uint8Array[]>([
        ['alg', -7],
        ['sig', new Uint8Array(sig)],
      ]);
      if (this.attestation) attStmt.set('x5c', this.attestation.x5c);
    } else {
      attStmt = new Map();
    }
    const attestationObject = isoCBOR.encode(
      new Map<string, string | Uint8Array | Map<string, number | Uint8Array | Uint8Array[]>>([
        ['fmt', fmt],
        ['attStmt', attStmt],
        ['authData', new Uint8Array(authData)],
      ]),
    );
    this.credentials.push(cred);
    return {
      id: cred.id,
      rawId: cred.id,
      type: 'public-key',
      response: {
        clientDataJSON: cdj,
        attestationObject: b64url(attestationObject),
        transports: this.transports as never,
      },
      clientExtensionResults: {},
      authenticatorAttachment: this.attachment,
    };
  }

  /** navigator.credentials.get(): an assertion by one of this authenticator's credentials. */
  authenticate(options: RequestOptionsLike, origin: string, o: AuthenticateOverrides = {}): AuthenticationResponseJSON {
    const rpId = options.rpId ?? new URL(origin).hostname;
    const cred = this.pick(options, rpId, o.credential);
    const signCount = o.signCount ?? (this.counterMode === 'zero' ? 0 : cred.signCount + (o.keepCounter ? 0 : 1));
    if (o.signCount === undefined && !o.keepCounter && this.counterMode === 'increment') cred.signCount = signCount;
    const authData = Buffer.concat([
      sha256(o.rpId ?? rpId),
      Buffer.from([o.flags ?? this.baseFlags()]),
      u32(signCount),
    ]);
    const cdj = clientDataJSON({
      type: o.type ?? 'webauthn.get',
      challenge: o.challenge ?? options.challenge,
      origin: o.origin ?? origin,
      crossOrigin: o.crossOrigin ?? false,
      ...o.clientData,
    });
    const signature = sign(
      'sha256',
      Buffer.concat([authData, sha256(Buffer.from(cdj, 'base64url'))]),
      o.privateKey ?? cred.privateKey,
    );
    const userHandle = o.userHandle === undefined ? cred.userHandle : o.userHandle;
    const id = o.claimId ?? cred.id;
    return {
      id,
      rawId: id,
      type: 'public-key',
      response: {
        clientDataJSON: cdj,
        authenticatorData: b64url(authData),
        signature: b64url(signature),
        ...(userHandle === null ? {} : { userHandle }),
      },
      clientExtensionResults: {},
      authenticatorAttachment: this.attachment,
    };
  }

  private pick(options: RequestOptionsLike, rpId: string, wanted: string | undefined): SoftwareCredential {
    const mine = this.credentials.filter((c) => c.rpId === rpId);
    if (wanted) {
      const c = this.credentials.find((x) => x.id === wanted);
      if (!c) throw new Error(`no credential ${wanted}`);
      return c;
    }
    const allow = options.allowCredentials ?? [];
    const found = allow.length > 0 ? mine.find((c) => allow.some((a) => a.id === c.id)) : mine[mine.length - 1];
    if (!found) throw new Error('NotAllowedError: no credential for this relying party');
    return found;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Packed attestation certificates

const OID_AAGUID_EXTENSION = '1.3.6.1.4.1.45724.1.1.4';
const ES256 = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export interface AttestationCertificateOptions {
  aaguid: string;
  /** Put the id-fido-gen-ce-aaguid extension in the leaf (default true) with this AAGUID (default `aaguid`). */
  aaguidExtension?: boolean | string;
  /** Leaf subject, RFC 4514 form. Default: C=GB, O=OpenCIS Test, OU=Authenticator Attestation, CN=OpenCIS Test Key. */
  subject?: string;
  /** Make the leaf a CA (forbidden for packed attestation). */
  leafIsCa?: boolean;
  notBefore?: Date;
  notAfter?: Date;
  /**
   * Issue the leaf from an intermediate certificate (itself issued by the root) instead of the root: a proper CA
   * (`ca: true`), or an end-entity certificate posing as one (`ca: false`, no key usage). x5c is then [leaf, intermediate].
   */
  intermediate?: { ca: boolean };
}

/**
 * A throwaway attestation root and a leaf meeting the packed-attestation certificate requirements (WebAuthn §8.2.1):
 * X.509 v3; subject C, O, OU "Authenticator Attestation", CN; basicConstraints CA false; the AAGUID extension, when
 * present, equal to the authenticator's AAGUID. The library checks validity against the real time, not a test clock.
 */
export async function createPackedAttestation(options: AttestationCertificateOptions): Promise<PackedAttestation> {
  const now = Date.now();
  // Valid from well before both the real time (the library's check) and any test clock (OpenCIS's own trust check runs
  // at the test's clock, fixed at 2026-11-26 in most files): a day before real time was after a fixed clock as soon
  // as the tests ran a day later.
  const notBefore = options.notBefore ?? new Date(now - 10 * 365 * 86_400_000);
  const notAfter = options.notAfter ?? new Date(now + 365 * 86_400_000);
  const rootKeys = (await webcrypto.subtle.generateKey(ES256, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const root = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomBytes(8)
      .toString('hex')
      .replace(/^[89a-f]/, '1'),
    name: 'C=GB, O=OpenCIS Test, OU=Attestation Root, CN=OpenCIS Test Attestation Root',
    notBefore,
    notAfter,
    keys: rootKeys,
    signingAlgorithm: ES256,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    ],
  });
  let issuer = { subject: root.subject, key: rootKeys.privateKey };
  const chain: Uint8Array[] = [];
  if (options.intermediate) {
    const keys = (await webcrypto.subtle.generateKey(ES256, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const intermediate = await x509.X509CertificateGenerator.create({
      serialNumber: randomBytes(8)
        .toString('hex')
        .replace(/^[89a-f]/, '3'),
      subject: 'C=GB, O=OpenCIS Test, OU=Authenticator Attestation, CN=OpenCIS Test Intermediate',
      issuer: root.subject,
      notBefore,
      notAfter,
      publicKey: keys.publicKey,
      signingKey: rootKeys.privateKey,
      signingAlgorithm: ES256,
      extensions: options.intermediate.ca
        ? [
            new x509.BasicConstraintsExtension(true, 0, true),
            new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true),
          ]
        : [new x509.BasicConstraintsExtension(false, undefined, true)],
    });
    issuer = { subject: intermediate.subject, key: keys.privateKey };
    chain.push(new Uint8Array(intermediate.rawData));
  }
  const leafKeys = (await webcrypto.subtle.generateKey(ES256, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const extensions: x509.Extension[] = [new x509.BasicConstraintsExtension(options.leafIsCa ?? false, undefined, true)];
  if (options.aaguidExtension !== false) {
    const value = typeof options.aaguidExtension === 'string' ? options.aaguidExtension : options.aaguid;
    // extnValue is the DER of OCTET STRING (16 bytes)
    extensions.push(
      new x509.Extension(OID_AAGUID_EXTENSION, false, Buffer.concat([Buffer.from([0x04, 0x10]), uuidBytes(value)])),
    );
  }
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: randomBytes(8)
      .toString('hex')
      .replace(/^[89a-f]/, '2'),
    subject: options.subject ?? 'C=GB, O=OpenCIS Test, OU=Authenticator Attestation, CN=OpenCIS Test Key',
    issuer: issuer.subject,
    notBefore,
    notAfter,
    publicKey: leafKeys.publicKey,
    signingKey: issuer.key,
    signingAlgorithm: ES256,
    extensions,
  });
  return {
    privateKey: KeyObject.from(leafKeys.privateKey),
    x5c: [new Uint8Array(leaf.rawData), ...chain],
    rootPem: root.toString('pem'),
  };
}
