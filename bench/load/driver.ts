/**
 * Drives a measurement: open loop (arrivals at a rate that follows a profile, in flight capped) or closed loop (N
 * callers back to back), bounded by time and by operation count; samples each node's RSS and CPU every second.
 */
import { HttpError } from './http.ts';
import { Recorder } from './metrics.ts';
import { cpuSeconds, machineBusySeconds, PostgresBackendCpu, rssMiB } from './procstat.ts';

export interface NodeInfo {
  name: string;
  pid: number | null;
  applicationName: string;
}

export interface OpSpec {
  /** Kind of operation (for the offered-rate bookkeeping). */
  kind: string;
  /** Arrivals per second at run time t (seconds since start), open loop; the weight in closed loop. */
  rate: (t: number) => number;
  /** Runs one; returns the name to record it under (or null: nothing to do, not counted). */
  run: () => Promise<string | null>;
}

export interface NodeSample {
  t: number;
  rss: Record<string, number | null>;
  inFlight: number;
  offered: number;
}

export interface CpuUse {
  /** CPU seconds per node process over the measurement. */
  nodes: Record<string, number | null>;
  postgres: number | null;
  haproxy: number | null;
  loadGenerator: number;
  machine: number;
}

export interface RunResult {
  recorder: Recorder;
  seconds: number;
  started: number;
  samples: NodeSample[];
  cpu: CpuUse;
  rss: Record<string, { start: number | null; end: number | null; max: number | null }>;
  dropped: number;
  offered: Record<string, number>;
}

export interface DriveOptions {
  mode: 'open' | 'closed';
  seconds: number;
  maxOps: number;
  /** Closed loop: callers. Open loop: most operations in flight (arrivals beyond are dropped and counted). */
  concurrency: number;
  ops: readonly OpSpec[];
  nodes: readonly NodeInfo[];
  haproxyPid?: number | null;
  databaseUrl?: string;
  /** Called every second (progress line). */
  onSecond?: (s: NodeSample, recorder: Recorder) => void;
  /** Stop early (e.g. a fault test's own schedule). */
  signal?: AbortSignal;
}

function describe(err: unknown): { reason: string; message: string } {
  if (err instanceof HttpError) {
    return { reason: `HTTP ${err.status}${err.code ? ` ${err.code}` : ''} at ${err.step}`, message: err.message };
  }
  const e = err as { code?: string; message?: string };
  return { reason: e.code ?? (e.message ?? String(err)).slice(0, 80), message: e.message ?? String(err) };
}

export async function drive(options: DriveOptions): Promise<RunResult> {
  const pg = options.databaseUrl
    ? new PostgresBackendCpu(
        options.databaseUrl,
        options.nodes.map((n) => n.applicationName),
      )
    : null;
  const cpu0 = {
    nodes: Object.fromEntries(options.nodes.map((n) => [n.name, cpuSeconds(n.pid)])),
    postgres: pg ? await pg.total() : null,
    haproxy: cpuSeconds(options.haproxyPid ?? null),
    self: process.cpuUsage(),
    machine: machineBusySeconds(),
  };
  const rss: RunResult['rss'] = Object.fromEntries(
    options.nodes.map((n) => {
      const v = rssMiB(n.pid);
      return [n.name, { start: v, end: v, max: v }];
    }),
  );
  const started = performance.now();
  const recorder = new Recorder(started);
  const samples: NodeSample[] = [];
  const offered: Record<string, number> = {};
  let started_ = 0;
  let inFlight = 0;
  let dropped = 0;
  const deadline = started + options.seconds * 1000;
  const stopped = () => performance.now() >= deadline || started_ >= options.maxOps || options.signal?.aborted === true;

  const runOne = async (op: OpSpec) => {
    started_++;
    inFlight++;
    const t0 = performance.now();
    try {
      const name = await op.run();
      if (name !== null) recorder.ok(name, performance.now() - t0);
    } catch (err) {
      const { reason, message } = describe(err);
      recorder.error(op.kind, reason, message);
    } finally {
      inFlight--;
    }
  };

  let lastOffered = 0;
  const sampler = setInterval(() => {
    const t = (performance.now() - started) / 1000;
    const s: NodeSample = { t, rss: {}, inFlight, offered: lastOffered };
    for (const n of options.nodes) {
      const v = rssMiB(n.pid);
      s.rss[n.name] = v;
      const r = rss[n.name]!;
      if (v !== null) {
        r.end = v;
        r.max = Math.max(r.max ?? 0, v);
      }
    }
    samples.push(s);
    options.onSecond?.(s, recorder);
  }, 1_000);

  const running = new Set<Promise<void>>();
  try {
    if (options.mode === 'closed') {
      const weights = options.ops.map((o) => Math.max(0, o.rate(0)));
      const total = weights.reduce((a, b) => a + b, 0) || 1;
      const pick = () => {
        let r = Math.random() * total;
        for (let i = 0; i < options.ops.length; i++) {
          r -= weights[i]!;
          if (r <= 0) return options.ops[i]!;
        }
        return options.ops.at(-1)!;
      };
      await Promise.all(
        Array.from({ length: options.concurrency }, async () => {
          while (!stopped()) {
            const op = pick();
            offered[op.kind] = (offered[op.kind] ?? 0) + 1;
            await runOne(op);
          }
        }),
      );
    } else {
      const credit = new Map<OpSpec, number>();
      let last = performance.now();
      while (!stopped()) {
        await new Promise((r) => setTimeout(r, 10));
        const now = performance.now();
        const dt = (now - last) / 1000;
        last = now;
        const t = (now - started) / 1000;
        let offeredNow = 0;
        for (const op of options.ops) {
          const rate = Math.max(0, op.rate(t));
          offeredNow += rate;
          let c = (credit.get(op) ?? 0) + rate * dt;
          while (c >= 1 && !stopped()) {
            c -= 1;
            offered[op.kind] = (offered[op.kind] ?? 0) + 1;
            if (inFlight >= options.concurrency) {
              dropped++;
              continue;
            }
            const p = runOne(op);
            running.add(p);
            void p.finally(() => running.delete(p));
          }
          credit.set(op, c);
        }
        lastOffered = offeredNow;
      }
      await Promise.all(running);
    }
  } finally {
    clearInterval(sampler);
  }
  const seconds = (performance.now() - started) / 1000;
  const self = process.cpuUsage(cpu0.self);
  const pgEnd = pg ? await pg.total() : null;
  await pg?.close();
  const haproxyEnd = cpuSeconds(options.haproxyPid ?? null);
  const cpu: CpuUse = {
    nodes: Object.fromEntries(
      options.nodes.map((n) => {
        const end = cpuSeconds(n.pid);
        const begin = cpu0.nodes[n.name];
        return [n.name, end !== null && begin !== null && begin !== undefined ? end - begin : null];
      }),
    ),
    postgres: pgEnd !== null && cpu0.postgres !== null ? Math.max(0, pgEnd - cpu0.postgres) : null,
    haproxy: haproxyEnd !== null && cpu0.haproxy !== null ? haproxyEnd - cpu0.haproxy : null,
    loadGenerator: (self.user + self.system) / 1e6,
    machine: machineBusySeconds() - cpu0.machine,
  };
  return { recorder, seconds, started, samples, cpu, rss, dropped, offered };
}
