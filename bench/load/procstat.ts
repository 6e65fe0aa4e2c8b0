/**
 * What the servers cost, read from /proc: resident memory (VmRSS) and CPU time of each node process, and the CPU of the
 * PostgreSQL backends serving them (found by application_name; the database is on this machine, as the URL is loopback).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import pg from 'pg';

let ticksPerSecond = 0;
function clockTicks(): number {
  if (ticksPerSecond > 0) return ticksPerSecond;
  try {
    ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    ticksPerSecond = 100;
  }
  return ticksPerSecond;
}

/** Resident set size of a process in MiB (VmRSS in /proc/<pid>/status), or null when it is gone. */
export function rssMiB(pid: number | null): number | null {
  if (pid === null) return null;
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

/** User + system CPU seconds a process has used, or null when it is gone. */
export function cpuSeconds(pid: number | null): number | null {
  if (pid === null) return null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / clockTicks();
  } catch {
    return null;
  }
}

/** Busy CPU seconds of the whole machine (every core), from /proc/stat. */
export function machineBusySeconds(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const [, user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).map(Number);
  return ((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0)) / clockTicks();
}

/**
 * CPU of the PostgreSQL backends with these application names. Backends live as long as the pool's connections, so
 * the sum over a measurement is right when the pools are warm; connections closed during it are missed.
 */
export class PostgresBackendCpu {
  private readonly client: pg.Client;
  private connected = false;
  constructor(
    databaseUrl: string,
    private readonly applicationNames: readonly string[],
  ) {
    this.client = new pg.Client({ connectionString: databaseUrl });
    this.client.on('error', () => {});
  }
  async total(): Promise<number | null> {
    try {
      if (!this.connected) {
        await this.client.connect();
        this.connected = true;
      }
      const { rows } = await this.client.query<{ pid: number }>(
        'SELECT pid FROM pg_stat_activity WHERE application_name = ANY($1)',
        [this.applicationNames],
      );
      let sum = 0;
      for (const { pid } of rows) sum += cpuSeconds(pid) ?? 0;
      return sum;
    } catch {
      return null;
    }
  }
  async close(): Promise<void> {
    if (this.connected) await this.client.end().catch(() => {});
  }
}
