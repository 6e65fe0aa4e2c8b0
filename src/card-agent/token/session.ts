/**
 * One open session on a card: what the token says of itself (TokenSummary), login and logout, PIN changes, objects,
 * the emulated retry counter (a public data object counting consecutive wrong passcodes), and the OpenCIS key and
 * certificate: finding them, generating the key on the card, signing, storing the certificate.
 */
import { createHash, randomBytes } from 'node:crypto';
import pkcs11js from 'pkcs11js';
import { PASSCODE_MAX_TRIES } from '../../domain/credentials/passcode.ts';
import { certificateSubject, p256PublicKeyFromEcPoint } from './der.ts';
import { CardError, loginError, pkcs11ReturnValue, toCardError } from './errors.ts';

export type Handle = Buffer;

export const AUTHENTICATION_LABEL = 'OpenCIS authentication';
export const FAILURE_COUNTER_LABEL = 'opencis-passcode-failures';
const FAILURE_COUNTER_APPLICATION = 'opencis-card-agent';
/** DER of the OID 1.2.840.10045.3.1.7 (P-256), the CKA_EC_PARAMS of an ES256 key. */
const P256_PARAMS = Buffer.from('06082a8648ce3d030107', 'hex');
/** DigestInfo prefix for SHA-256 (RFC 8017 §9.2), for cards without CKM_SHA256_RSA_PKCS. */
const SHA256_DIGEST_INFO = Buffer.from('3031300d060960864801650304020105000420', 'hex');

export interface TokenSummary {
  slot: Handle;
  serial: string;
  label: string;
  manufacturer: string;
  model: string;
  flags: number;
  initialized: boolean;
  userPinInitialized: boolean;
  /** The card's own retry counter reached zero (real cards; SoftHSM2 never sets it). */
  userPinLocked: boolean;
  userPinFinalTry: boolean;
  writeProtected: boolean;
}

/** PKCS#11 pads token strings with blanks; pkcs11js's C_InitToken pads labels with NULs. Strip both. */
function unpad(text: string): string {
  return text.replace(/[\s\0]+$/, '');
}

/** What the token in `slot` says of itself, its strings unpadded and its flags read. */
export function summarise(slot: Handle, info: pkcs11js.TokenInfo): TokenSummary {
  const has = (flag: number) => (info.flags & flag) !== 0;
  return {
    slot,
    serial: unpad(info.serialNumber),
    label: unpad(info.label),
    manufacturer: unpad(info.manufacturerID),
    model: unpad(info.model),
    flags: info.flags,
    initialized: has(pkcs11js.CKF_TOKEN_INITIALIZED),
    userPinInitialized: has(pkcs11js.CKF_USER_PIN_INITIALIZED),
    userPinLocked: has(pkcs11js.CKF_USER_PIN_LOCKED),
    userPinFinalTry: has(pkcs11js.CKF_USER_PIN_FINAL_TRY),
    writeProtected: has(pkcs11js.CKF_WRITE_PROTECTED),
  };
}

export type KeyType = 'EC' | 'RSA';
export type SignatureAlgorithm = 'ES256' | 'RS256';

export interface CardCredential {
  id: Buffer;
  /** DER X.509 certificate. */
  certificate: Buffer;
}

export interface GeneratedKey {
  id: Buffer;
  privateKey: Handle;
  /** DER SubjectPublicKeyInfo. */
  publicKey: Buffer;
}

/** Answers of a token that does not let the agent keep its count (it then relies on the card's own counter). */
const CANNOT_STORE = new Set([
  'CKR_USER_NOT_LOGGED_IN',
  'CKR_TOKEN_WRITE_PROTECTED',
  'CKR_SESSION_READ_ONLY',
  'CKR_FUNCTION_NOT_SUPPORTED',
  'CKR_TEMPLATE_INCONSISTENT',
  'CKR_ATTRIBUTE_VALUE_INVALID',
  'CKR_DEVICE_MEMORY',
]);

function readUlong(value: Buffer): number {
  return value.length === 8 ? Number(value.readBigUInt64LE()) : value.readUInt32LE();
}

export class CardSession {
  private closed = false;

  constructor(
    private readonly lib: pkcs11js.PKCS11,
    private readonly handle: Handle,
    readonly token: TokenSummary,
  ) {}

  /** The token's flags as of now (they change with wrong PINs on real cards). */
  refreshToken(): TokenSummary {
    return summarise(this.token.slot, this.lib.C_GetTokenInfo(this.token.slot));
  }

  login(who: 'user' | 'so', pin: string): void {
    const userType = who === 'user' ? pkcs11js.CKU_USER : pkcs11js.CKU_SO;
    try {
      this.lib.C_Login(this.handle, userType, pin);
    } catch (err) {
      const rv = pkcs11ReturnValue(err);
      if (rv === 'CKR_USER_ALREADY_LOGGED_IN' || rv === 'CKR_USER_ANOTHER_ALREADY_LOGGED_IN') {
        // Never take "already logged in" for a correct PIN: log out and check this PIN for real.
        this.logout();
        try {
          this.lib.C_Login(this.handle, userType, pin);
          return;
        } catch (again) {
          throw loginError(who, again);
        }
      }
      throw loginError(who, err);
    }
  }

  logout(): void {
    try {
      this.lib.C_Logout(this.handle);
    } catch {
      // not logged in
    }
  }

  /** Changes the PIN of whoever is logged in (the SO here: transport PIN → unblock secret). */
  changePin(oldPin: string, newPin: string): void {
    try {
      this.lib.C_SetPIN(this.handle, oldPin, newPin);
    } catch (err) {
      const rv = pkcs11ReturnValue(err);
      if (rv === 'CKR_PIN_INCORRECT') throw new CardError('card.admin_pin_incorrect', { returnValue: rv });
      if (rv === 'CKR_PIN_LEN_RANGE' || rv === 'CKR_PIN_INVALID' || rv === 'CKR_PIN_TOO_WEAK') {
        throw new CardError('card.error', { message: 'The card refused the new administrator PIN.', returnValue: rv });
      }
      throw toCardError(err);
    }
  }

  /** Sets the user PIN (the passcode) as the SO; on real cards this also resets the card's retry counter. */
  initUserPin(pin: string): void {
    try {
      this.lib.C_InitPIN(this.handle, pin);
    } catch (err) {
      const rv = pkcs11ReturnValue(err);
      if (rv === 'CKR_PIN_LEN_RANGE' || rv === 'CKR_PIN_INVALID' || rv === 'CKR_PIN_TOO_WEAK') {
        throw new CardError('card.passcode_rejected', { returnValue: rv });
      }
      throw toCardError(err);
    }
  }

  findObjects(template: pkcs11js.Template): Handle[] {
    this.lib.C_FindObjectsInit(this.handle, template);
    try {
      const found: Handle[] = [];
      for (;;) {
        const batch = this.lib.C_FindObjects(this.handle, 32);
        if (batch.length === 0) return found;
        found.push(...batch);
      }
    } finally {
      this.lib.C_FindObjectsFinal(this.handle);
    }
  }

  attributes(object: Handle, types: number[]): Buffer[] {
    return this.lib
      .C_GetAttributeValue(
        this.handle,
        object,
        types.map((type) => ({ type })),
      )
      .map((a) => a.value);
  }

  createObject(template: pkcs11js.Template): Handle {
    return this.lib.C_CreateObject(this.handle, template);
  }

  destroyObject(object: Handle): void {
    this.lib.C_DestroyObject(this.handle, object);
  }

  // --- the emulated retry counter ---

  /** Consecutive wrong passcodes recorded on the card. Unreadable values count as locked (fail safe). */
  readPasscodeFailures(): number {
    const counters = this.failureCounters();
    let failures = 0;
    for (const counter of counters) {
      const [value] = this.attributes(counter, [pkcs11js.CKA_VALUE]);
      const text = value?.toString('ascii') ?? '';
      failures = Math.max(failures, /^\d{1,3}$/.test(text) ? Number(text) : PASSCODE_MAX_TRIES);
    }
    return failures;
  }

  /**
   * Records the count. SoftHSM2 will not modify CKA_VALUE of a data object, so a new object is written before the
   * old ones are removed; readers take the highest, so a crash in between can never hand back a try.
   * Returns false when the token will not store it (a physical card that keeps its own counter).
   */
  writePasscodeFailures(failures: number): boolean {
    const old = this.failureCounters();
    try {
      this.createObject([
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_DATA },
        { type: pkcs11js.CKA_TOKEN, value: true },
        { type: pkcs11js.CKA_PRIVATE, value: false },
        { type: pkcs11js.CKA_LABEL, value: FAILURE_COUNTER_LABEL },
        { type: pkcs11js.CKA_APPLICATION, value: FAILURE_COUNTER_APPLICATION },
        { type: pkcs11js.CKA_VALUE, value: Buffer.from(String(failures), 'ascii') },
      ]);
    } catch (err) {
      const rv = pkcs11ReturnValue(err);
      if (this.token.writeProtected || (rv !== undefined && CANNOT_STORE.has(rv))) return false;
      throw toCardError(err);
    }
    for (const counter of old) this.destroyObject(counter);
    return true;
  }

  private failureCounters(): Handle[] {
    return this.findObjects([
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_DATA },
      { type: pkcs11js.CKA_LABEL, value: FAILURE_COUNTER_LABEL },
    ]);
  }

  // --- keys and certificates ---

  /** The authentication certificate (public: readable before login). OpenCIS's label first, else the first one. */
  findCredential(): CardCredential | undefined {
    const certificates = this.findObjects([
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_CERTIFICATE },
      { type: pkcs11js.CKA_CERTIFICATE_TYPE, value: pkcs11js.CKC_X_509 },
    ]).map((handle) => {
      const [label, id, certificate] = this.attributes(handle, [
        pkcs11js.CKA_LABEL,
        pkcs11js.CKA_ID,
        pkcs11js.CKA_VALUE,
      ]);
      return { label: label?.toString('utf8') ?? '', id: id ?? Buffer.alloc(0), certificate: certificate! };
    });
    const chosen = certificates.find((c) => c.label === AUTHENTICATION_LABEL) ?? certificates[0];
    return chosen && { id: chosen.id, certificate: chosen.certificate };
  }

  /** The private key paired with a certificate (private: needs the user logged in). */
  findPrivateKey(id: Buffer): { handle: Handle; keyType: KeyType } | undefined {
    const [handle] = this.findObjects([
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
      { type: pkcs11js.CKA_ID, value: id },
    ]);
    if (!handle) return undefined;
    const keyType = readUlong(this.attributes(handle, [pkcs11js.CKA_KEY_TYPE])[0]!);
    if (keyType === pkcs11js.CKK_RSA) return { handle, keyType: 'RSA' };
    if (keyType === pkcs11js.CKK_EC) {
      const [params] = this.attributes(handle, [pkcs11js.CKA_EC_PARAMS]);
      if (params?.equals(P256_PARAMS)) return { handle, keyType: 'EC' };
    }
    throw new CardError('card.unsupported_key');
  }

  /** Removes OpenCIS's key pair and certificate before a re-issue (the private key is visible only when logged in). */
  deleteAuthenticationObjects(): void {
    for (const object of this.findObjects([{ type: pkcs11js.CKA_LABEL, value: AUTHENTICATION_LABEL }])) {
      this.destroyObject(object);
    }
  }

  /** An EC P-256 key pair generated on the card: the private key never leaves it (DOMAIN §6, AAL3). */
  async generateAuthenticationKey(): Promise<GeneratedKey> {
    const id = randomBytes(16);
    const common = [
      { type: pkcs11js.CKA_TOKEN, value: true },
      { type: pkcs11js.CKA_ID, value: id },
      { type: pkcs11js.CKA_LABEL, value: AUTHENTICATION_LABEL },
    ];
    const pair = await this.lib.C_GenerateKeyPairAsync(
      this.handle,
      { mechanism: pkcs11js.CKM_EC_KEY_PAIR_GEN },
      [
        ...common,
        { type: pkcs11js.CKA_PRIVATE, value: false },
        { type: pkcs11js.CKA_VERIFY, value: true },
        { type: pkcs11js.CKA_EC_PARAMS, value: P256_PARAMS },
      ],
      [
        ...common,
        { type: pkcs11js.CKA_PRIVATE, value: true },
        { type: pkcs11js.CKA_SENSITIVE, value: true },
        { type: pkcs11js.CKA_EXTRACTABLE, value: false },
        { type: pkcs11js.CKA_SIGN, value: true },
        { type: pkcs11js.CKA_DERIVE, value: false },
      ],
    );
    const [point] = this.attributes(pair.publicKey, [pkcs11js.CKA_EC_POINT]);
    return { id, privateKey: pair.privateKey, publicKey: p256PublicKeyFromEcPoint(point!) };
  }

  /** Signs `message`: ES256 hashes here and signs with CKM_ECDSA (SoftHSM2 has no CKM_ECDSA_SHA256). */
  async sign(
    key: { handle: Handle; keyType: KeyType },
    message: Buffer,
  ): Promise<{ signature: Buffer; algorithm: SignatureAlgorithm }> {
    const digest = createHash('sha256').update(message).digest();
    if (key.keyType === 'EC') {
      const signature = await this.signRaw({ mechanism: pkcs11js.CKM_ECDSA }, key.handle, digest);
      if (signature.length !== 64) throw new CardError('card.unsupported_key');
      return { signature, algorithm: 'ES256' };
    }
    const mechanisms = this.lib.C_GetMechanismList(this.token.slot);
    const signature = mechanisms.includes(pkcs11js.CKM_SHA256_RSA_PKCS)
      ? await this.signRaw({ mechanism: pkcs11js.CKM_SHA256_RSA_PKCS }, key.handle, message)
      : await this.signRaw(
          { mechanism: pkcs11js.CKM_RSA_PKCS },
          key.handle,
          Buffer.concat([SHA256_DIGEST_INFO, digest]),
        );
    return { signature, algorithm: 'RS256' };
  }

  /** Stores the certificate next to its key: same CKA_ID, public, with the subject PKCS#11 requires. */
  writeCertificate(id: Buffer, certificate: Buffer): void {
    this.createObject([
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_CERTIFICATE },
      { type: pkcs11js.CKA_CERTIFICATE_TYPE, value: pkcs11js.CKC_X_509 },
      { type: pkcs11js.CKA_TOKEN, value: true },
      { type: pkcs11js.CKA_PRIVATE, value: false },
      { type: pkcs11js.CKA_ID, value: id },
      { type: pkcs11js.CKA_LABEL, value: AUTHENTICATION_LABEL },
      { type: pkcs11js.CKA_SUBJECT, value: certificateSubject(certificate) },
      { type: pkcs11js.CKA_VALUE, value: certificate },
    ]);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.logout();
    try {
      this.lib.C_CloseSession(this.handle);
    } catch {
      // the card went away: the session is gone with it
    }
  }

  private async signRaw(mechanism: pkcs11js.Mechanism, key: Handle, data: Buffer): Promise<Buffer> {
    this.lib.C_SignInit(this.handle, mechanism, key);
    return this.lib.C_SignAsync(this.handle, data, Buffer.alloc(1024));
  }
}
