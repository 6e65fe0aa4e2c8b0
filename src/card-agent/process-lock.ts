import { createHash } from 'node:crypto';
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';

/**
 * One PKCS#11 job at a time per module, across every process of this user — not only within one agent (its queue).
 * A virtual smartcard (SoftHSM2) keeps no retry counter of its own: the agent keeps it on the card as an object it
 * reads, writes and checks around each passcode try. Two agents (or an agent and a second copy started by mistake)
 * working the same token at once could each read "2 wrong so far" and both try: a fourth passcode would reach the card
 * — and their counter objects, written and removed under each other, gave spurious errors. The lock makes the
 * read–try–count of one job whole.
 *
 * The lock is a file created exclusively (O_EXCL) in the temporary directory, named after the user and the module,
 * holding the owner's pid; it is removed when the job ends. A lock whose owner has died (a crash) is taken over.
 */
const WAIT_MS = 30_000;

export function lockPathFor(modulePath: string): string {
  const user = (() => {
    try {
      return String(userInfo().uid);
    } catch {
      return 'user';
    }
  })();
  const id = createHash('sha256').update(modulePath).digest('hex').slice(0, 16);
  return join(tmpdir(), `opencis-card-agent-${user}-${id}.lock`);
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
