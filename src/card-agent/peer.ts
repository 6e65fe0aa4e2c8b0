import { readFile } from 'node:fs/promises';

/**
 * Which user's program is at the other end of a loopback connection. Loopback is shared by every user of a computer —
 * on a terminal server (Citrix, Remote Desktop) by everyone signed in to it — and a program, unlike a browser, can
 * write any Origin and Host it likes: those headers tell pages apart, not users. So the agent answers only programs of
 * the user it runs as (the user's browser among them); anyone else's would otherwise get that user's CIS1 ticket, or
 * drive their card.
 *
 * On Linux the kernel says, in /proc/net/tcp (and tcp6), which uid owns each socket: the client's socket is the one
 * whose local end is the connection's remote end and whose remote end is the agent's port. Elsewhere there is no such
 * table: `unknown`, and the agent keeps its other rules.
 */
export type PeerUser = { uid: number } | 'unknown' | 'not_found';

function hexPort(port: number): string {
  return port.toString(16).toUpperCase().padStart(4, '0');
}

/** 127.0.0.1 as /proc writes it (IPv4 in host byte order on little-endian machines), and its IPv4-mapped IPv6 form. */
const LOOPBACK4 = ['0100007F'];
const LOOPBACK6 = ['0000000000000000FFFF00000100007F'];

async function table(path: string): Promise<string[] | undefined> {
  try {
    return (await readFile(path, 'utf8')).split('\n').slice(1);
  } catch {
    return undefined;
  }
}

export async function peerUser(remotePort: number | undefined, localPort: number): Promise<PeerUser> {
  if (remotePort === undefined) return 'not_found';
  const tables = [
    { rows: await table('/proc/net/tcp'), addresses: LOOPBACK4 },
    { rows: await table('/proc/net/tcp6'), addresses: LOOPBACK6 },
  ];
  if (tables.every((t) => t.rows === undefined)) return 'unknown';
  for (const { rows, addresses } of tables) {
    for (const row of rows ?? []) {
      const [, local, remote, , , , , uid] = row.trim().split(/\s+/);
      if (!local || !remote || uid === undefined) continue;
      const [localAddress, localHex] = local.split(':');
      const [remoteAddress, remoteHex] = remote.split(':');
      if (
        localHex === hexPort(remotePort) &&
        remoteHex === hexPort(localPort) &&
        addresses.includes(localAddress ?? '') &&
        addresses.includes(remoteAddress ?? '')
      ) {
        return { uid: Number(uid) };
      }
    }
  }
  return 'not_found';
}
