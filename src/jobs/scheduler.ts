import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { Database } from '../storage/database.ts';
import { repositoriesOn } from '../storage/repositories/index.ts';

/**
 * A tiny cluster-wide scheduler on PostgreSQL (no timer per node doing the work): every node ticks, and a due job is
 * claimed by exactly one node through a conditional UPDATE with a lease. The claim moves `next_run_at` forward, so a
 * job runs once per period however many nodes there are; a node that dies mid-run frees the job when its lease ends.
 */
export interface Job {
  name: string;
  everySeconds: number;
  /** Longest a run may take before another node may take the job over. */
  leaseSeconds?: number;
  run(): Promise<string | number | undefined>;
}

export interface Scheduler {
  /** Runs every due job this node manages to claim; returns the names it ran. */
  tick(): Promise<string[]>;
  stop(): void;
}

export const NODE_ID = `${hostname()}:${process.pid}`;

export async function registerJobs(db: Database, jobs: readonly Job[]): Promise<void> {
  const repos = repositoriesOn(db);
  for (const job of jobs) await repos.jobs.registerJob(job.name, job.everySeconds);
}

export function startScheduler(
  db: Database,
  jobs: readonly Job[],
  options: { intervalMs?: number; logger?: Logger; nodeId?: string; autoStart?: boolean } = {},
): Scheduler {
  const nodeId = options.nodeId ?? NODE_ID;
  const repos = repositoriesOn(db);
  let running = false;
  const tick = async (): Promise<string[]> => {
    if (running) return [];
    running = true;
    const ran: string[] = [];
    try {
      for (const job of jobs) {
        if (!(await repos.jobs.claimDueJob(job.name, nodeId, job.leaseSeconds ?? 300))) continue;
        let result: string;
        try {
          result = String((await job.run()) ?? 'ok');
        } catch (err) {
          result = `failed: ${(err as Error).message}`.slice(0, 300);
          options.logger?.error({ job: job.name, err: { message: (err as Error).message } }, 'scheduled job failed');
        }
        await repos.jobs.finishJob(job.name, result, nodeId);
        ran.push(job.name);
      }
    } finally {
      running = false;
    }
    return ran;
  };
  const timer =
    options.autoStart === false
      ? undefined
      : setInterval(() => {
          tick().catch((err) =>
            options.logger?.warn({ err: { message: (err as Error).message } }, 'scheduler tick failed'),
          );
        }, options.intervalMs ?? 10_000);
  timer?.unref();
  return {
    tick,
    stop() {
      if (timer) clearInterval(timer);
    },
  };
}
