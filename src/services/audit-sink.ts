import { open, readFile, stat } from 'node:fs/promises';
import { z } from 'zod';
import type { AuditSeal } from '../domain/audit/chain.ts';

/**
 * The seal sink (AUDIT_SEAL_SINK): every seal is also appended, as one JSON line, to a file outside the database — on
 * another disk or host, or one the kernel keeps append-only (`chattr +a`), or one a log shipper forwards to write-once
 * storage. Someone who can rewrite the database can still delete the newest seals and events with them (a cut at the
 * tail leaves nothing inside to compare with); `opencis audit verify` compares the database with the sink and reports
 * any seal the sink holds that the database has lost or changed.
 */
const hex64 = z.string().regex(/^[0-9a-f]{64}$/);
const sinkLine = z.object({
  type: z.literal('opencis.audit_seal'),
  id: z.number().int().positive(),
  at: z.iso.datetime(),
  tips: z.array(z.tuple([z.number().int().min(0), hex64])).max(1024),
  prevHash: hex64,
  keyId: z
    .string()
    .regex(/^[0-9a-f]{16}$/)
    .nullable(),
  hash: hex64,
});

export function sealLine(seal: AuditSeal): string {
  return `${JSON.stringify({
    type: 'opencis.audit_seal',
    id: seal.id,
    at: seal.at,
    tips: seal.tips.map((t) => [t.position, t.hash]),
    prevHash: seal.prevHash,
    keyId: seal.keyId,
    hash: seal.hash,
  })}\n`;
}

/** Appends seals, flushed to disk before returning. The file is created (mode 0600) if it does not exist. */
export async function appendToSink(file: string, seals: readonly AuditSeal[]): Promise<void> {
  if (seals.length === 0) return;
  const fh = await open(file, 'a', 0o600);
  try {
    await fh.write(seals.map(sealLine).join(''));
    await fh.datasync();
  } finally {
    await fh.close();
  }
}

/** The id of the last seal in the sink (0 for none, or no file), read from its end. */
export async function lastSealIdInSink(file: string): Promise<number> {
  let size: number;
  try {
    size = (await stat(file)).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
  if (size === 0) return 0;
  const fh = await open(file, 'r');
  try {
    const length = Math.min(size, 256 * 1024);
    const { buffer, bytesRead } = await fh.read(Buffer.alloc(length), 0, length, size - length);
    const lines = buffer.subarray(0, bytesRead).toString('utf8').split('\n').filter(Boolean);
    const last = lines.at(-1);
    const parsed = last === undefined ? null : sinkLine.safeParse(safeJson(last));
    if (!parsed?.success) throw new Error(`the last line of the seal sink ${file} is not a seal`);
    return parsed.data.id;
  } finally {
    await fh.close();
  }
}

export type SinkReading = { ok: true; seals: AuditSeal[] } | { ok: false; line: number };

/** Every seal in the sink, in file order; or the first line that is not one. A missing file holds none. */
export async function readSink(file: string): Promise<SinkReading> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { ok: true, seals: [] };
    throw err;
  }
  const seals: AuditSeal[] = [];
  for (const [i, line] of text.split('\n').entries()) {
    if (line.trim() === '') continue;
    const parsed = sinkLine.safeParse(safeJson(line));
    if (!parsed.success) return { ok: false, line: i + 1 };
    const { type: _type, tips, ...rest } = parsed.data;
    seals.push({ ...rest, tips: tips.map(([position, hash]) => ({ position, hash })) });
  }
  return { ok: true, seals };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
