/**
 * The PKCS#11 library as a process-global: one Pkcs11Module per library path, its one queue of jobs (each initialises
 * the library, works and finalises it again, under the process lock), and what a job can do with it (Cryptoki: list
 * the tokens, find one, open a session, initialise a blank one).
 */
import pkcs11js from 'pkcs11js';
import { lockPathFor, withProcessLock } from '../process-lock.ts';
import { CardError, pkcs11ReturnValue, toCardError } from './errors.ts';
import { CardSession, type Handle, summarise, type TokenSummary } from './session.ts';

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

/** The process's one handle on the PKCS#11 library at `path` (src/card-agent/token.ts says why only one). */
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
