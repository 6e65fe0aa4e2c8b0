/**
 * Where a server's CPU goes (issue 20, "profile first, then cut"), for `npm run bench:side-by-side`:
 *
 *   - per step: the server CPU (every thread of its process, plus its PostgreSQL backends) each HTTP request of a flow
 *     costs, measured with one caller so each request runs alone: read from /proc/<pid>/task/<tid>/schedstat
 *     (nanoseconds on the CPU) before and after the request. Work a request leaves behind after its answer (a
 *     deferred write) is counted against the next request;
 *   - per kind of work (BENCH_PROFILE=1): the server runs with the V8 inspector on loopback; each measurement is
 *     profiled on its own (Profiler.start/stop over the DevTools protocol) and its samples are put into kinds of work
 *     by the code on their stack: crypto, certificate parsing, SQL, Redis, templates, JSON, logging, the protocol
 *     library, the HTTP framework, socket I/O, garbage collection, OpenCIS's own code. The share of samples with the
 *     audit writer on the stack is given besides (its SQL and hashing are counted in their kinds too).
 *
 * A profiled run is slower than a plain one (the sampler costs CPU): its figures are written to
 * bench/results/profile-*.json, never to the side-by-side results a reader takes as the figures.
 */
import { readdirSync, readFileSync } from 'node:fs';

// ---- per step, from /proc

/** Nanoseconds every thread of `pid` has spent on a CPU (0 when it is gone). */
export function processCpuNs(pid: number | null): number {
  if (pid === null) return 0;
  let sum = 0;
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return 0;
  }
  for (const tid of tids) {
    try {
      sum += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // the thread ended
    }
  }
  return sum;
}

/** Server CPU of one step: the server process and the database backends serving it. */
export class StepMeter {
  readonly steps = new Map<string, { count: number; ns: number }>();
  constructor(
    private readonly pid: number | null,
    private readonly backendPids: readonly number[] = [],
  ) {}

  private now(): number {
    let ns = processCpuNs(this.pid);
    for (const b of this.backendPids) ns += processCpuNs(b);
    return ns;
  }

  async around<T>(step: string, run: () => Promise<T>): Promise<T> {
    const before = this.now();
    const out = await run();
    const spent = this.now() - before;
    const s = this.steps.get(step) ?? { count: 0, ns: 0 };
    s.count++;
    s.ns += spent;
    this.steps.set(step, s);
    return out;
  }

  /** Mean server CPU milliseconds per step, in the order the steps came. */
  table(): { step: string; count: number; cpuMs: number }[] {
    return [...this.steps].map(([step, s]) => ({ step, count: s.count, cpuMs: s.ns / 1e6 / Math.max(s.count, 1) }));
  }
}

// ---- per kind of work, from a V8 CPU profile

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
export interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export const KINDS = [
  'crypto',
  'certificate parsing',
  'SQL (driver, pool, repositories)',
  'Redis (client, OIDC adapter)',
  'templates',
  'JSON',
  'logging',
  'protocol library (oidc-provider, koa)',
  'HTTP framework (fastify, node:http)',
  'socket I/O (writes, reads)',
  'garbage collection',
  'OpenCIS code',
  'other',
] as const;
export type Kind = (typeof KINDS)[number];

function packageOf(url: string): string | null {
  const m = /node_modules\/((@[^/]+\/)?[^/]+)/.exec(url);
  return m ? m[1]! : null;
}

/** The kind of one frame, or null when the frame says nothing (look further up the stack). */
function kindOfFrame(f: CallFrame): Kind | null {
  const url = f.url;
  const pkg = packageOf(url);
  if (f.functionName === '(garbage collector)') return 'garbage collection';
  if (/^(writeUtf8String|writeLatin1String|writev|writeBuffer|readStart|onStreamRead)$/.test(f.functionName) && !url)
    return 'socket I/O (writes, reads)';
  if ((f.functionName === 'parse' || f.functionName === 'stringify') && !url) return 'JSON';
  if (pkg) {
    if (/^(jose|@simplewebauthn\/server|@noble\/.*|@levischuck\/tiny-cbor|otpauth)$/.test(pkg)) return 'crypto';
    if (/^(@peculiar\/.*|pkijs|asn1js|pvtsutils|pvutils|tsyringe)$/.test(pkg)) return 'certificate parsing';
    if (/^(pg|pg-pool|pg-protocol|pg-types|postgres-.*|@electric-sql\/pglite)$/.test(pkg))
      return 'SQL (driver, pool, repositories)';
    if (/^(ioredis|redis-parser|@ioredis\/.*|denque|cluster-key-slot)$/.test(pkg))
      return 'Redis (client, OIDC adapter)';
    if (/^(nunjucks|@fastify\/view|a-sync-waterfall)$/.test(pkg)) return 'templates';
    if (/^(fast-json-stringify|secure-json-parse|fast-uri|ajv|json-schema-.*)$/.test(pkg)) return 'JSON';
    if (
      /^(pino|pino-std-serializers|sonic-boom|thread-stream|fast-redact|quick-format-unescaped|on-exit-leak-free)$/.test(
        pkg,
      )
    )
      return 'logging';
    if (
      /^(oidc-provider|koa|koa-compose|@koa\/.*|cookies|keygrip|delegates|http-errors|statuses|quick-lru|nanoid|jsesc|raw-body|content-type|media-typer|type-is|mime-.*|accepts|negotiator|eta|oidc-token-hash|@panva\/.*)$/.test(
        pkg,
      )
    )
      return 'protocol library (oidc-provider, koa)';
    if (
      /^(fastify|find-my-way|light-my-request|avvio|@fastify\/.*|fastq|toad-cache|process-warning|rfdc|abstract-logging|safe-regex2|ret|cookie|fast-decode-uri-component)$/.test(
        pkg,
      )
    )
      return 'HTTP framework (fastify, node:http)';
    return null;
  }
  if (url.startsWith('node:internal/crypto') || url === 'node:crypto') return 'crypto';
  if (/^node:(_http_|internal\/http)/.test(url)) return 'HTTP framework (fastify, node:http)';
  if (/^node:(net|internal\/stream_base_commons|internal\/net)/.test(url)) return 'socket I/O (writes, reads)';
  if (/\/src\/storage\//.test(url)) return 'SQL (driver, pool, repositories)';
  if (/\/src\/oidc\/redis-adapter\.ts$/.test(url)) return 'Redis (client, OIDC adapter)';
  if (/\/src\//.test(url)) return 'OpenCIS code';
  return null;
}

export interface KindTable {
  samples: number;
  /** Milliseconds of CPU (samples × interval) per kind, idle left out. */
  ms: Record<Kind, number>;
  /** Milliseconds with the audit writer (src/services/audit.ts) on the stack. */
  auditMs: number;
  /** The functions with the most self time, for reading the profile. */
  top: { frame: string; ms: number }[];
}

/** Puts a profile's busy samples into kinds of work: the innermost frame that names a kind decides. */
export function kindsOf(profile: CpuProfile): KindTable {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const kindOfNode = new Map<number, Kind>();
  const auditOnStack = new Map<number, boolean>();
  const resolve = (id: number): Kind => {
    const known = kindOfNode.get(id);
    if (known) return known;
    const own = kindOfFrame(byId.get(id)!.callFrame);
    const up = parent.get(id);
    const kind = own ?? (up === undefined ? 'other' : resolve(up));
    kindOfNode.set(id, kind);
    return kind;
  };
  const audited = (id: number): boolean => {
    const known = auditOnStack.get(id);
    if (known !== undefined) return known;
    const here = /\/src\/services\/audit\.ts$/.test(byId.get(id)!.callFrame.url);
    const up = parent.get(id);
    const value = here || (up !== undefined && audited(up));
    auditOnStack.set(id, value);
    return value;
  };
  const ms = Object.fromEntries(KINDS.map((k) => [k, 0])) as Record<Kind, number>;
  const self = new Map<string, number>();
  let auditMs = 0;
  let samples = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!;
    const node = byId.get(id)!;
    const name = node.callFrame.functionName;
    if (name === '(idle)' || name === '(program)' || name === '(root)') continue;
    const t = (profile.timeDeltas[i] ?? 0) / 1000;
    samples++;
    ms[resolve(id)] += t;
    if (audited(id)) auditMs += t;
    const frame = `${name || '(anonymous)'} ${packageOf(node.callFrame.url) ?? node.callFrame.url.replace(/^.*\/src\//, 'src/')}`;
    self.set(frame, (self.get(frame) ?? 0) + t);
  }
  const top = [...self]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 15)
    .map(([frame, v]) => ({ frame, ms: v }));
  return { samples, ms, auditMs, top };
}

// ---- the inspector

/** A DevTools-protocol session with a server started with --inspect on loopback, to profile one measurement. */
export class Inspector {
  private next = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private constructor(private readonly ws: WebSocket) {
    ws.addEventListener('message', (ev) => {
      const msg = JSON.parse(String(ev.data)) as { id?: number; result?: unknown; error?: { message: string } };
      if (msg.id === undefined) return;
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      if (msg.error) p.reject(new Error(msg.error.message));
      else p.resolve(msg.result);
    });
  }

  static async connect(port: number, timeoutMs = 30_000): Promise<Inspector> {
    const until = Date.now() + timeoutMs;
    let lastError: unknown;
    while (Date.now() < until) {
      try {
        const list = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as {
          webSocketDebuggerUrl: string;
        }[];
        const url = list[0]?.webSocketDebuggerUrl;
        if (url && new URL(url).hostname === '127.0.0.1') {
          const ws = new WebSocket(url);
          await new Promise<void>((resolve, reject) => {
            ws.addEventListener('open', () => resolve(), { once: true });
            ws.addEventListener('error', () => reject(new Error('inspector refused the connection')), { once: true });
          });
          const inspector = new Inspector(ws);
          await inspector.send('Profiler.enable');
          await inspector.send('Profiler.setSamplingInterval', { interval: 500 });
          return inspector;
        }
      } catch (err) {
        lastError = err;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(`no inspector on 127.0.0.1:${port}: ${String(lastError)}`);
  }

  send(method: string, params: Record<string, unknown> = {}): Promise<unknown> {
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }

  async profile<T>(run: () => Promise<T>): Promise<{ out: T; profile: CpuProfile }> {
    await this.send('Profiler.start');
    let out: T;
    try {
      out = await run();
    } catch (err) {
      await this.send('Profiler.stop').catch(() => {});
      throw err;
    }
    const { profile } = (await this.send('Profiler.stop')) as { profile: CpuProfile };
    return { out, profile };
  }

  close(): void {
    this.ws.close();
  }
}
