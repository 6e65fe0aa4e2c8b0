import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { homedir, tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';

/**
 * One PKCS#11 job at a time per module, across every process of this user — not only within one agent (its queue).
 * A virtual smartcard (SoftHSM2) keeps no retry counter of its own: the agent keeps it on the card as an object it
 * reads, writes and checks around each passcode try. Two agents (or an agent and a second copy started by mistake)
 * working the same token at once could each read "2 wrong so far" and both try: a fourth passcode would reach the card
 * — and their counter objects, written and removed under each other, gave spurious errors. The lock makes the
 * read–try–count of one job whole.
 *
 * The lock is a file created exclusively (O_EXCL) in a directory of the user's own (lockDirectory), named after the
 * module, holding the owner's pid; it is removed when the job ends. A lock whose owner has died (a crash) is taken
 * over.
 */
const WAIT_MS = 30_000;

export function lockPathFor(modulePath: string): string {
  const id = createHash('sha256').update(modulePath).digest('hex').slice(0, 16);
  return join(lockDirectory(), `card-agent-${id}.lock`);
}

/**
 * The user's own runtime directory (XDG_RUNTIME_DIR, mode 0700), else a private one in their home: never a directory
 * other users can write to, where one could plant the lock file and keep the agent waiting.
 */
function lockDirectory(): string {
  const runtime = process.env.XDG_RUNTIME_DIR;
  if (runtime) return runtime;
  for (const dir of [join(homedir(), '.cache', 'opencis'), join(tmpdir(), `opencis-${userId()}`)]) {
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      if ((statSync(dir).mode & 0o077) === 0 || dir.startsWith(homedir())) return dir;
    } catch {
      // try the next
    }
  }
  return tmpdir();
}

function userId(): string {
  try {
    return String(userInfo().uid);
  } catch {
    return 'user';
  }
}

function ownerAlive(path: string): boolean {
  let pid: number;
  try {
    pid = Number(readFileSync(path, 'utf8'));
  } catch {
    return true; // just released, or being written: look again
  }
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Runs `job` holding the lock at `path`; throws `busy()` if another live process holds it for longer than 30 s. */
export async function withProcessLock<T>(path: string, job: () => Promise<T>, busy: () => Error): Promise<T> {
  const deadline = Date.now() + WAIT_MS;
  let fd: number | undefined;
  while (fd === undefined) {
    try {
      fd = openSync(path, 'wx', 0o600);
      writeSync(fd, String(process.pid));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      if (!ownerAlive(path)) {
        try {
          unlinkSync(path);
        } catch {
          // someone else took it over first
        }
        continue;
      }
      if (Date.now() > deadline) throw busy();
      await new Promise((resolve) => setTimeout(resolve, 5 + Math.random() * 15));
    }
  }
  try {
    return await job();
  } finally {
    closeSync(fd);
    try {
      unlinkSync(path);
    } catch {
      // already gone
    }
  }
}
