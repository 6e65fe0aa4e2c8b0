/**
 * A thin PKCS#11 layer for the card agent (pkcs11js), plus the few card operations built on it.
 *
 * - One PKCS#11 library is process-global state (a second `C_Initialize` in the same process fails with
 *   CKR_CRYPTOKI_ALREADY_INITIALIZED), so there is one `Pkcs11Module` per library path, and every call goes through
 *   its one queue.
 * - Each job initialises the library, works and finalises it again: no session or login outlives a job, and a card
 *   inserted, removed or created by another program (pkcs11-tool, softhsm2-util) is seen by the next job. Jobs of
 *   other processes of the same user on the same module wait too (process-lock.ts), so counting tries stays whole.
 * - SoftHSM2 (the virtual smartcard) has no retry counter, so the agent keeps the card's: a public data object
 *   counting consecutive wrong passcodes (DOMAIN §6: three wrong passcodes lock a card).
 */
import { createHash, createPublicKey, randomBytes, randomInt, X509Certificate } from 'node:crypto';
import pkcs11js from 'pkcs11js';
import { PASSCODE_MAX_TRIES } from '../domain/credentials/passcode.ts';
import { type CardAgentErrorCode, errorCatalogue } from '../domain/errors.ts';
import { lockPathFor, withProcessLock } from './process-lock.ts';

type Handle = Buffer;

export const AUTHENTICATION_LABEL = 'OpenCIS authentication';
export const FAILURE_COUNTER_LABEL = 'opencis-passcode-failures';
const FAILURE_COUNTER_APPLICATION = 'opencis-card-agent';
/** DER of the OID 1.2.840.10045.3.1.7 (P-256), the CKA_EC_PARAMS of an ES256 key. */
const P256_PARAMS = Buffer.from('06082a8648ce3d030107', 'hex');
/** DigestInfo prefix for SHA-256 (RFC 8017 §9.2), for cards without CKM_SHA256_RSA_PKCS. */
const SHA256_DIGEST_INFO = Buffer.from('3031300d060960864801650304020105000420', 'hex');

// ---------------------------------------------------------------------------------------------------------------
// Errors

/** The card's refusals and failures (catalogued in src/domain/errors.ts with the server's codes). */
export type CardErrorCode = Extract<CardAgentErrorCode, `card.${string}`>;

export class CardError extends Error {
  readonly code: CardErrorCode;
  readonly status: number;
  /** Passcode tries left before the card locks (only on 'card.passcode_incorrect'). */
  readonly retriesLeft: number | undefined;
  /** The PKCS#11 return value behind it, for the log (never shown to the page). */
  readonly returnValue: string | undefined;

  constructor(code: CardErrorCode, options: { retriesLeft?: number; message?: string; returnValue?: string } = {}) {
    super(options.message ?? errorCatalogue[code].message);
    this.name = 'CardError';
    this.code = code;
    this.status = errorCatalogue[code].status;
    this.retriesLeft = options.retriesLeft;
    this.returnValue = options.returnValue;
  }
}

/** The CKR_* name of a PKCS#11 failure. pkcs11js throws Pkcs11Error for most calls but a plain Error (same text). */
export function pkcs11ReturnValue(err: unknown): string | undefined {
  if (!(err instanceof Error)) return undefined;
  return /\b(CKR_[A-Z0-9_]+)/.exec(err.message)?.[1];
}

const CARD_GONE = new Set([
  'CKR_TOKEN_NOT_PRESENT',
  'CKR_TOKEN_NOT_RECOGNIZED',
  'CKR_DEVICE_REMOVED',
  'CKR_SLOT_ID_INVALID',
  'CKR_SESSION_HANDLE_INVALID',
  'CKR_SESSION_CLOSED',
]);

/** Maps any failure inside a job to a CardError; the message stays generic (details go to the log only). */
export function toCardError(err: unknown): CardError {
  if (err instanceof CardError) return err;
  const rv = pkcs11ReturnValue(err);
  if (rv && CARD_GONE.has(rv)) return new CardError('card.absent', { returnValue: rv });
  return new CardError('card.error', { returnValue: rv ?? (err instanceof Error ? err.name : 'unknown') });
}

// ---------------------------------------------------------------------------------------------------------------
// Module, queue and job

/** Runs jobs one at a time, in order; a failed job does not stop the next. */
class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(job: () => Promise<T>): Promise<T> {
    const result = this.tail.then(job);
    this.tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }
}

const modules = new Map<string, Pkcs11Module>();

/** The process's one handle on the PKCS#11 library at `path` (see the file comment for why only one). */
export function openPkcs11Module(path: string): Pkcs11Module {
  let module = modules.get(path);
  if (!module) {
    module = new Pkcs11Module(path);
    modules.set(path, module);
  }
  return module;
}

export class Pkcs11Module {
  private lib: pkcs11js.PKCS11 | undefined;
  private readonly queue = new SerialQueue();
  private readonly lockPath: string;

  constructor(readonly path: string) {
    this.lockPath = lockPathFor(path);
  }

  /** Runs `job` with the library initialised; closes every session it opened and finalises afterwards. */
  run<T>(job: (cryptoki: Cryptoki) => Promise<T> | T): Promise<T> {
    return this.queue.run(() =>
      withProcessLock(
        this.lockPath,
        () => this.runNow(job),
        () => new CardError('card.busy'),
      ),
    );
  }

  private async runNow<T>(job: (cryptoki: Cryptoki) => Promise<T> | T): Promise<T> {
    const lib = this.load();
    let ownsInitialisation = true;
    try {
      lib.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
    } catch (err) {
      // Someone else in this process initialised it outside the queue: work within theirs, leave it to them.
      if (pkcs11ReturnValue(err) !== 'CKR_CRYPTOKI_ALREADY_INITIALIZED') throw toCardError(err);
      ownsInitialisation = false;
    }
    const cryptoki = new Cryptoki(lib);
    try {
      return await job(cryptoki);
    } finally {
      cryptoki.closeSessions();
      if (ownsInitialisation) {
        try {
          lib.C_Finalize();
        } catch {
          // nothing left to release
        }
      }
    }
  }

  /** Opens the token (by label, else the first initialised one) in a read/write session for the length of `job`. */
  withCard<T>(label: string | undefined, job: (card: CardSession) => Promise<T> | T): Promise<T> {
    return this.run((cryptoki) => job(cryptoki.openSession(cryptoki.findToken(label))));
  }

  private load(): pkcs11js.PKCS11 {
    if (!this.lib) {
      const lib = new pkcs11js.PKCS11();
      try {
        lib.load(this.path);
      } catch {
        throw new CardError('card.reader_unavailable');
      }
      this.lib = lib;
    }
    return this.lib;
  }
}

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

function summarise(slot: Handle, info: pkcs11js.TokenInfo): TokenSummary {
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

/** What a job can do with the initialised library. Valid only inside `Pkcs11Module.run`. */
export class Cryptoki {
  private readonly sessions: CardSession[] = [];

  constructor(private readonly lib: pkcs11js.PKCS11) {}

  /** Every slot with a token present, initialised or not. A card removed while listing is skipped. */
  tokens(): TokenSummary[] {
    const out: TokenSummary[] = [];
    for (const slot of this.lib.C_GetSlotList(true)) {
      try {
        out.push(summarise(slot, this.lib.C_GetTokenInfo(slot)));
      } catch {
        // removed between the two calls
      }
    }
    return out;
  }

  /** The initialised token with this label, or the first initialised token. Slot ids are never used: they change. */
  findToken(label: string | undefined): TokenSummary {
    const token = this.tokens().find((t) => t.initialized && (label === undefined || t.label === label));
    if (!token) throw new CardError('card.absent');
    return token;
  }

  openSession(token: TokenSummary): CardSession {
    const flags = pkcs11js.CKF_SERIAL_SESSION | (token.writeProtected ? 0 : pkcs11js.CKF_RW_SESSION);
    let handle: Handle;
    try {
      handle = this.lib.C_OpenSession(token.slot, flags);
    } catch (err) {
      throw toCardError(err);
    }
    const session = new CardSession(this.lib, handle, token);
    this.sessions.push(session);
    return session;
  }

  /** C_InitToken on a blank slot (SoftHSM2 always offers one). Returns the new token's serial. */
  initToken(slot: Handle, soPin: string, label: string): string {
    // pkcs11js pads the label with NULs; PKCS#11 says blanks (and softhsm2-util, OpenSC write blanks).
    this.lib.C_InitToken(slot, soPin, label.padEnd(32, ' '));
    return summarise(slot, this.lib.C_GetTokenInfo(slot)).serial;
  }

  closeSessions(): void {
    for (const session of this.sessions.splice(0)) session.close();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Session

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

function loginError(who: 'user' | 'so', err: unknown): CardError {
  const rv = pkcs11ReturnValue(err);
  const returnValue = rv;
  switch (rv) {
    case 'CKR_PIN_INCORRECT':
      return new CardError(who === 'user' ? 'card.passcode_incorrect' : 'card.admin_pin_incorrect', { returnValue });
    case 'CKR_PIN_LOCKED':
      return new CardError(who === 'user' ? 'card.locked' : 'card.admin_pin_locked', { returnValue });
    case 'CKR_PIN_LEN_RANGE':
    case 'CKR_PIN_INVALID':
      return new CardError(who === 'user' ? 'card.passcode_format' : 'card.admin_pin_incorrect', { returnValue });
    case 'CKR_PIN_EXPIRED':
      return new CardError('card.passcode_expired', { returnValue });
    case 'CKR_USER_PIN_NOT_INITIALIZED':
      return new CardError('card.passcode_not_set', { returnValue });
  }
  return toCardError(err);
}

// ---------------------------------------------------------------------------------------------------------------
// DER helpers

/** CKA_EC_POINT is a DER OCTET STRING around the uncompressed point (04 || x || y): the point is the last 65 bytes. */
export function p256PublicKeyFromEcPoint(ecPoint: Buffer): Buffer {
  const point = ecPoint.subarray(ecPoint.length - 65);
  if (point.length !== 65 || point[0] !== 0x04) throw new CardError('card.unsupported_key');
  return createPublicKey({
    key: {
      kty: 'EC',
      crv: 'P-256',
      x: point.subarray(1, 33).toString('base64url'),
      y: point.subarray(33, 65).toString('base64url'),
    },
    format: 'jwk',
  }).export({ type: 'spki', format: 'der' });
}

/** One DER element at `offset`: where its content starts and where it ends. */
function derElement(der: Buffer, offset: number): { tag: number; content: number; end: number } {
  const tag = der[offset];
  let lengthByte = der[offset + 1];
  if (tag === undefined || lengthByte === undefined) throw new Error('truncated DER');
  let content = offset + 2;
  let length = lengthByte;
  if (lengthByte & 0x80) {
    const count = lengthByte & 0x7f;
    if (count < 1 || count > 4) throw new Error('unsupported DER length');
    length = 0;
    for (let i = 0; i < count; i++) {
      lengthByte = der[content + i];
      if (lengthByte === undefined) throw new Error('truncated DER');
      length = length * 256 + lengthByte;
    }
    content += count;
  }
  if (content + length > der.length) throw new Error('truncated DER');
  return { tag, content, end: content + length };
}

/** The subject Name of a DER certificate (tbsCertificate: [0] version?, serial, signature, issuer, validity, subject). */
export function certificateSubject(certificate: Buffer): Buffer {
  const outer = derElement(certificate, 0);
  const tbs = derElement(certificate, outer.content);
  let at = tbs.content;
  if (derElement(certificate, at).tag === 0xa0) at = derElement(certificate, at).end;
  for (let i = 0; i < 4; i++) at = derElement(certificate, at).end; // serial, signature, issuer, validity
  const subject = derElement(certificate, at);
  return certificate.subarray(at, subject.end);
}

// ---------------------------------------------------------------------------------------------------------------
// Card operations

export interface LockState {
  failures: number;
  locked: boolean;
  retriesLeft: number;
}

/** Locked by the agent's count (virtual cards) or by the card itself (real cards count on the chip). */
export function lockStateOf(token: TokenSummary, failures: number): LockState {
  const locked = token.userPinLocked || failures >= PASSCODE_MAX_TRIES;
  const retriesLeft = locked
    ? 0
    : Math.min(PASSCODE_MAX_TRIES - failures, token.userPinFinalTry ? 1 : PASSCODE_MAX_TRIES);
  return { failures, locked, retriesLeft };
}

export function lockState(card: CardSession): LockState {
  return lockStateOf(card.refreshToken(), card.readPasscodeFailures());
}

export type CardEvent = 'passcode_incorrect' | 'locked';

/**
 * Checks the passcode on the card, counting like a card does: the try is recorded before the attempt (a crash or a
 * pulled card mid-attempt cannot give it back) and cleared on success. Three wrong in a row lock (DOMAIN §6).
 */
export function verifyPasscode(card: CardSession, passcode: string, onEvent: (event: CardEvent) => void): void {
  const before = lockState(card);
  if (before.locked) {
    onEvent('locked');
    throw new CardError('card.locked');
  }
  const counted = card.writePasscodeFailures(before.failures + 1);
  try {
    card.login('user', passcode);
  } catch (err) {
    if (err instanceof CardError && err.code === 'card.passcode_incorrect') {
      onEvent('passcode_incorrect');
      // A card that keeps its own count only tells "final try" and "locked" (its flags): assume one try used.
      const after = lockStateOf(card.refreshToken(), counted ? before.failures + 1 : 1);
      if (after.locked) {
        onEvent('locked');
        throw new CardError('card.locked');
      }
      throw new CardError('card.passcode_incorrect', {
        retriesLeft: after.retriesLeft,
        message: `The passcode is not correct. ${after.retriesLeft === 1 ? '1 try is' : `${after.retriesLeft} tries are`} left before the card locks.`,
      });
    }
    if (err instanceof CardError && err.code === 'card.locked') onEvent('locked');
    // Not a wrong guess (card refused the format, card pulled …): hand the try back.
    else if (counted) {
      try {
        card.writePasscodeFailures(before.failures);
      } catch {
        // the card is gone: the try stays counted, the safe side
      }
    }
    throw err;
  }
  if (counted) card.writePasscodeFailures(0);
}

export interface CardSignature {
  certificate: Buffer;
  signature: Buffer;
  algorithm: SignatureAlgorithm;
}

/** Sign-in: passcode checked on the card, then the card signs `message` with the key of its certificate. */
export async function signWithPasscode(
  card: CardSession,
  passcode: string,
  message: Buffer,
  onEvent: (event: CardEvent, certificate: Buffer | null) => void,
): Promise<CardSignature> {
  const credential = card.findCredential();
  if (!credential) throw new CardError('card.not_issued');
  verifyPasscode(card, passcode, (event) => onEvent(event, credential.certificate));
  const key = card.findPrivateKey(credential.id);
  if (!key) throw new CardError('card.not_issued');
  const { signature, algorithm } = await card.sign(key, message);
  return { certificate: credential.certificate, signature, algorithm };
}

export function assertSameCard(card: CardSession, serial: string): void {
  if (card.token.serial !== serial) throw new CardError('card.changed');
}

/** 8 random digits: a user PIN nobody knows, until the holder sets their passcode. */
function temporaryUserPin(): string {
  return String(randomInt(0, 100_000_000)).padStart(8, '0');
}

export interface Personalisation {
  key: GeneratedKey;
  /** The new key's signature over `proofMessage`: proof of possession for the certificate request. */
  proof: Buffer;
  temporaryPin: string;
}

/**
 * Issue, first half (RA desk): take the card from its transport SO PIN to the holder's unblock secret, give it an
 * unknown user PIN, replace any old OpenCIS key with a new one generated on the card, and prove possession.
 */
export async function personaliseCard(
  card: CardSession,
  secrets: { transportSoPin: string; unblockSecret: string },
  proofMessage: Buffer,
): Promise<Personalisation> {
  card.login('so', secrets.transportSoPin);
  card.changePin(secrets.transportSoPin, secrets.unblockSecret);
  const temporaryPin = temporaryUserPin();
  card.initUserPin(temporaryPin);
  card.logout();
  card.login('user', temporaryPin);
  card.deleteAuthenticationObjects();
  const key = await card.generateAuthenticationKey();
  const { signature } = await card.sign({ handle: key.privateKey, keyType: 'EC' }, proofMessage);
  return { key, proof: signature, temporaryPin };
}

/** Issue, second half: store the certificate the server issued for the new key, start with a clean count. */
export function storeCertificate(card: CardSession, personalisation: Personalisation, certificate: Buffer): void {
  card.login('user', personalisation.temporaryPin);
  card.writeCertificate(personalisation.key.id, certificate);
  card.writePasscodeFailures(0);
}

/**
 * Self-renewal: the server certified the key already on the card again (last 90 days of the old certificate). The
 * passcode is checked on the card (it counts towards the lock like any try), the new certificate must be for the very
 * key the card holds, and it replaces the old one.
 */
export function replaceCertificate(
  card: CardSession,
  passcode: string,
  certificate: Buffer,
  onEvent: (event: CardEvent, certificate: Buffer | null) => void,
): void {
  const credential = card.findCredential();
  if (!credential) throw new CardError('card.not_issued');
  if (!samePublicKey(credential.certificate, certificate)) throw new CardError('card.certificate_mismatch');
  verifyPasscode(card, passcode, (event) => onEvent(event, credential.certificate));
  for (const object of card.findObjects([
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_CERTIFICATE },
    { type: pkcs11js.CKA_ID, value: credential.id },
  ])) {
    card.destroyObject(object);
  }
  card.writeCertificate(credential.id, certificate);
}

function samePublicKey(a: Buffer, b: Buffer): boolean {
  try {
    const key = (der: Buffer) => new X509Certificate(der).publicKey.export({ type: 'spki', format: 'der' });
    return key(a).equals(key(b));
  } catch {
    return false;
  }
}

/** Sets the holder's passcode as the SO (first passcode, RA unlock, self-service unlock); unlocks the card. */
export function setPasscode(card: CardSession, unblockSecret: string, passcode: string): void {
  card.login('so', unblockSecret);
  card.initUserPin(passcode);
  card.writePasscodeFailures(0);
}

/** Creates a virtual smartcard: a SoftHSM2 token on the module's blank slot. Returns its serial. */
export function initVirtualCard(module: Pkcs11Module, label: string, soPin: string): Promise<string> {
  return module.run((cryptoki) => {
    const tokens = cryptoki.tokens();
    if (tokens.some((t) => t.initialized && t.label === label)) {
      throw new Error(`a card labelled "${label}" already exists`);
    }
    const blank = tokens.find((t) => !t.initialized);
    if (!blank) {
      throw new Error('this PKCS#11 module has no blank token to initialise (physical cards come initialised)');
    }
    return cryptoki.initToken(blank.slot, soPin, label);
  });
}
