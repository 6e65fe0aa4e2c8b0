/**
 * Soak: `npm run soak`. Steady national-mix load for a long time (SOAK_MINUTES, default 30) against a cluster, sampling
 * every node's resident memory each second, to show whether memory or latency creeps up. Prints the trend per node
 * (RSS in the first and last minutes, least-squares slope in MiB per hour after a warm-up) and latency per minute;
 * writes bench/results/soak-<time>.json and a PNG chart.
 *
 *   SOAK_MINUTES   run length in minutes (default 30; decimals allowed, e.g. 2.5)
 *   SOAK_RATE      sign-ins per second, steady (default 2), with 1 refresh, 1 userinfo and 0.2 RA searches each
 *   LOAD_TARGET    own (default: a cluster of LOAD_NODES nodes started for the soak) | cluster | http://127.0.0.1:PORT
 *   LOAD_NODES, LOAD_PORT, LOAD_SCHEMA, LOAD_CONCURRENCY (most in flight, 64)
 */
import { cpus, loadavg } from 'node:os';
import { drive, type RunResult } from './driver.ts';
import { fmt, percentile, table } from './metrics.ts';
import { chartFor, nationalOps, prepare, printReport, resultJson, save } from './run.ts';
import { positiveNumber, resolveTarget } from './target.ts';

const out = (line = '') => process.stdout.write(`${line}\n`);

const minutes = positiveNumber('SOAK_MINUTES', 30, 24 * 60);
const rate = positiveNumber('SOAK_RATE', 2, 1_000);

/** Least-squares slope of y over x. */
function slope(points: readonly (readonly [number, number])[]): number {
  const n = points.length;
  if (n < 2) return Number.NaN;
  const mx = points.reduce((a, p) => a + p[0], 0) / n;
  const my = points.reduce((a, p) => a + p[1], 0) / n;
  let num = 0;
  let den = 0;
  for (const [x, y] of points) {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  return den === 0 ? Number.NaN : num / den;
}

/**
 * RSS per node: the first and last minute, and the least-squares slope after a warm-up (the first third of the run, at
 * least a minute: V8 grows its heap for a while before it settles). Under ~10 minutes the slope mostly measures that
 * growth between collections: read it from long runs only.
 */
export function memoryTrend(result: RunResult) {
  const warmup = Math.max(60, result.seconds / 3);
  return Object.keys(result.rss).map((node) => {
    const points = result.samples
      .filter((s) => s.t >= warmup && s.rss[node] !== null && s.rss[node] !== undefined)
      .map((s) => [s.t, s.rss[node]!] as const);
    const within = (from: number, to: number) =>
      result.samples.filter((s) => s.t >= from && s.t < to && s.rss[node] != null).map((s) => s.rss[node]!);
    const avg = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : Number.NaN);
    const first = within(0, 60);
    const last = within(result.seconds - 60, result.seconds + 1);
    return {
      node,
      firstMinuteMiB: avg(first),
      lastMinuteMiB: avg(last),
      // The lowest reading of a minute is the heap after a collection: the figure a leak would push up.
      firstMinuteFloorMiB: first.length ? Math.min(...first) : Number.NaN,
      lastMinuteFloorMiB: last.length ? Math.min(...last) : Number.NaN,
      maxMiB: result.rss[node]?.max ?? Number.NaN,
      slopeMiBPerHour: slope(points) * 3600,
    };
  });
}

async function main(): Promise<void> {
  out(
    `OpenCIS soak: ${minutes} min at ${rate} sign-ins/s (+ refresh, userinfo, RA search); Node ${process.version}, ` +
      `${cpus().length} CPUs, load average ${loadavg()[0]!.toFixed(1)}.`,
  );
  const target = await resolveTarget((l) => out(`  ${l}`));
  try {
    const session = await prepare(target);
    const seconds = minutes * 60;
    try {
      const result = await drive({
        mode: 'open',
        seconds,
        maxOps: 50_000_000,
        concurrency: Number(process.env.LOAD_CONCURRENCY) || 64,
        ops: nationalOps(session.flows, rate, seconds, true),
        nodes: target.nodes,
        haproxyPid: target.haproxyPid,
        databaseUrl: target.databaseUrl,
        onSecond: (s, r) => {
          if (Math.round(s.t) % 30 !== 0) return;
          const rss = Object.entries(s.rss)
            .map(([k, v]) => `${k} ${v === null ? '-' : Math.round(v)}`)
            .join(', ');
          out(
            `  ${Math.round(s.t)} s: ${r.totalOk} ok, ${r.totalErrors} errors, ${s.inFlight} in flight; RSS MiB ${rss}`,
          );
        },
      });
      printReport(`Soak on ${target.description}`, result, session.byNode, target.nodes);
      const trend = memoryTrend(result);
      out('\nMemory trend (VmRSS):\n');
      out(
        table(
          ['node', 'first minute MiB', 'last minute MiB', 'max MiB', 'slope after warm-up, MiB/hour (10+ min runs)'],
          trend.map((t) => [
            t.node,
            fmt(t.firstMinuteMiB, 0),
            fmt(t.lastMinuteMiB, 0),
            fmt(t.maxMiB, 0),
            fmt(t.slopeMiBPerHour),
          ]),
        ),
      );
      // Latency per minute: does it creep?
      const timeline = result.recorder.timeline();
      const perMinute: string[][] = [];
      for (let m = 0; m * 60 < Math.floor(result.seconds); m++) {
        const secs = timeline.filter((s) => s.second >= m * 60 && s.second < (m + 1) * 60);
        const p95s = secs
          .map((s) => s.p95)
          .filter(Number.isFinite)
          .sort((a, b) => a - b);
        perMinute.push([
          String(m + 1),
          String(secs.reduce((a, s) => a + s.completed, 0)),
          String(secs.reduce((a, s) => a + s.errors, 0)),
          fmt(percentile(p95s, 0.5)),
        ]);
      }
      out('\nPer minute:\n');
      out(table(['minute', 'ops ok', 'errors', 'median of per-second p95, ms'], perMinute));
      const png = chartFor(
        `OpenCIS soak: ${minutes} min at ${rate} sign-ins/s, ${target.nodes.length} node(s)`,
        result,
        {
          xLabel: 'seconds since start',
          notes: trend.map(
            (t) =>
              `${t.node}: RSS ${fmt(t.firstMinuteMiB, 0)} MiB in the first minute, ${fmt(t.lastMinuteMiB, 0)} MiB in the last; slope ${fmt(t.slopeMiBPerHour)} MiB/hour`,
          ),
        },
      );
      const files = save(
        'soak',
        { scenario: 'soak', minutes, rate, target: target.description, trend, ...resultJson(result, session.byNode) },
        png,
      );
      out(`\nWritten ${files.json}\n        ${files.png}`);
    } finally {
      session.http.close();
    }
  } finally {
    await target.close();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
