/** Latencies, errors and throughput of a load run: per operation, per second, per node; tables for the terminal. */

export function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

export interface OpSummary {
  op: string;
  ok: number;
  errors: number;
  perSecond: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

export interface SecondSample {
  second: number;
  completed: number;
  errors: number;
  /** p50/p95/p99 over every operation finishing in this second, ms. */
  p50: number;
  p95: number;
  p99: number;
  /** p95 per operation kind, ms. */
  p95ByOp: Record<string, number>;
}

export class Recorder {
  private readonly latencies = new Map<string, number[]>();
  private readonly errorCounts = new Map<string, number>();
  private readonly reasons = new Map<string, number>();
  private readonly perSecond: { all: number[]; byOp: Map<string, number[]>; errors: number }[] = [];
  readonly byNode = new Map<string, number>();
  readonly samples: string[] = [];
  constructor(readonly startedAt: number) {}

  private bucket(at: number) {
    const s = Math.max(0, Math.floor((at - this.startedAt) / 1000));
    while (this.perSecond.length <= s) this.perSecond.push({ all: [], byOp: new Map(), errors: 0 });
    return this.perSecond[s]!;
  }

  ok(op: string, ms: number, at = performance.now()): void {
    const list = this.latencies.get(op) ?? [];
    if (list.length === 0) this.latencies.set(op, list);
    list.push(ms);
    const b = this.bucket(at);
    b.all.push(ms);
    const l = b.byOp.get(op) ?? [];
    if (l.length === 0) b.byOp.set(op, l);
    l.push(ms);
  }

  error(op: string, reason: string, message: string, at = performance.now()): void {
    this.errorCounts.set(op, (this.errorCounts.get(op) ?? 0) + 1);
    const key = `${op}: ${reason}`;
    this.reasons.set(key, (this.reasons.get(key) ?? 0) + 1);
    if (this.samples.length < 12) this.samples.push(`${op}: ${message.slice(0, 240)}`);
    this.bucket(at).errors++;
  }

  node(name: string | null): void {
    if (name) this.byNode.set(name, (this.byNode.get(name) ?? 0) + 1);
  }

  get totalErrors(): number {
    let n = 0;
    for (const v of this.errorCounts.values()) n += v;
    return n;
  }

  get totalOk(): number {
    let n = 0;
    for (const v of this.latencies.values()) n += v.length;
    return n;
  }

  errorReasons(): [string, number][] {
    return [...this.reasons].sort((a, b) => b[1] - a[1]);
  }

  summary(seconds: number): OpSummary[] {
    const ops = new Set([...this.latencies.keys(), ...this.errorCounts.keys()]);
    return [...ops].map((op) => {
      const sorted = [...(this.latencies.get(op) ?? [])].sort((a, b) => a - b);
      return {
        op,
        ok: sorted.length,
        errors: this.errorCounts.get(op) ?? 0,
        perSecond: sorted.length / seconds,
        p50: percentile(sorted, 0.5),
        p95: percentile(sorted, 0.95),
        p99: percentile(sorted, 0.99),
        max: sorted.at(-1) ?? Number.NaN,
      };
    });
  }

  timeline(): SecondSample[] {
    return this.perSecond.map((b, second) => {
      const all = [...b.all].sort((x, y) => x - y);
      const p95ByOp: Record<string, number> = {};
      for (const [op, l] of b.byOp)
        p95ByOp[op] = percentile(
          [...l].sort((x, y) => x - y),
          0.95,
        );
      return {
        second,
        completed: all.length,
        errors: b.errors,
        p50: percentile(all, 0.5),
        p95: percentile(all, 0.95),
        p99: percentile(all, 0.99),
        p95ByOp,
      };
    });
  }
}

const fmt = (v: number, digits = 1) => (Number.isFinite(v) ? v.toFixed(digits) : '-');

/** A Markdown table (readable in a terminal, pasteable into bench/README.md). */
export function table(header: readonly string[], rows: readonly (readonly string[])[], rightAlignFrom = 1): string {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  const line = (cells: readonly string[]) =>
    `| ${cells.map((v, c) => (c >= rightAlignFrom ? v.padStart(widths[c]!) : v.padEnd(widths[c]!))).join(' | ')} |`;
  const sep = `| ${widths.map((w, c) => (c >= rightAlignFrom ? `${'-'.repeat(Math.max(1, w - 1))}:` : '-'.repeat(w))).join(' | ')} |`;
  return [line(header), sep, ...rows.map(line)].join('\n');
}

export function opTable(summary: readonly OpSummary[]): string {
  return table(
    ['operation', 'ok', 'errors', 'per s', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms'],
    summary.map((s) => [
      s.op,
      String(s.ok),
      String(s.errors),
      fmt(s.perSecond),
      fmt(s.p50),
      fmt(s.p95),
      fmt(s.p99),
      fmt(s.max, 0),
    ]),
  );
}

export { fmt };
