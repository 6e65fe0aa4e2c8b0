/**
 * A minimal line-chart renderer writing PNG with node:zlib (no image library: ImageMagick is not always installed, and
 * the `convert` on some machines is a stand-in). RGB canvas, Bresenham lines, a 5×7 bitmap font, one or more panels
 * sharing the x axis.
 */
import { crc32, deflateSync } from 'node:zlib';

export type Rgb = readonly [number, number, number];

export class Canvas {
  readonly pixels: Uint8Array;
  constructor(
    readonly width: number,
    readonly height: number,
    background: Rgb = [255, 255, 255],
  ) {
    this.pixels = new Uint8Array(width * height * 3);
    for (let i = 0; i < width * height; i++) this.pixels.set(background, i * 3);
  }

  set(x: number, y: number, c: Rgb): void {
    const xi = Math.round(x);
    const yi = Math.round(y);
    if (xi < 0 || yi < 0 || xi >= this.width || yi >= this.height) return;
    this.pixels.set(c, (yi * this.width + xi) * 3);
  }

  fill(x0: number, y0: number, w: number, h: number, c: Rgb): void {
    for (let y = Math.max(0, Math.round(y0)); y < Math.min(this.height, Math.round(y0 + h)); y++) {
      for (let x = Math.max(0, Math.round(x0)); x < Math.min(this.width, Math.round(x0 + w)); x++) this.set(x, y, c);
    }
  }

  line(x0: number, y0: number, x1: number, y1: number, c: Rgb, thickness = 1): void {
    let x = Math.round(x0);
    let y = Math.round(y0);
    const xe = Math.round(x1);
    const ye = Math.round(y1);
    const dx = Math.abs(xe - x);
    const dy = -Math.abs(ye - y);
    const sx = x < xe ? 1 : -1;
    const sy = y < ye ? 1 : -1;
    let err = dx + dy;
    const r = Math.floor(thickness / 2);
    for (;;) {
      if (thickness <= 1) this.set(x, y, c);
      else this.fill(x - r, y - r, thickness, thickness, c);
      if (x === xe && y === ye) break;
      const e2 = 2 * err;
      if (e2 >= dy) {
        err += dy;
        x += sx;
      }
      if (e2 <= dx) {
        err += dx;
        y += sy;
      }
    }
  }

  /** Text in the 5×7 font, `scale` pixels per dot; returns the width drawn. */
  text(x: number, y: number, s: string, c: Rgb, scale = 1): number {
    let cx = Math.round(x);
    for (const ch of s) {
      const glyph = FONT[normalise(ch)] ?? FONT['?']!;
      for (let row = 0; row < 7; row++) {
        for (let col = 0; col < 5; col++) {
          if (glyph[row]! & (1 << (4 - col))) this.fill(cx + col * scale, y + row * scale, scale, scale, c);
        }
      }
      cx += 6 * scale;
    }
    return cx - x;
  }

  static textWidth(s: string, scale = 1): number {
    return [...s].length * 6 * scale;
  }

  png(): Buffer {
    const chunk = (type: string, data: Buffer) => {
      const head = Buffer.alloc(8);
      head.writeUInt32BE(data.length, 0);
      head.write(type, 4, 'latin1');
      const crc = Buffer.alloc(4);
      crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])));
      return Buffer.concat([head, data, crc]);
    };
    const ihdr = Buffer.alloc(13);
    ihdr.writeUInt32BE(this.width, 0);
    ihdr.writeUInt32BE(this.height, 4);
    ihdr[8] = 8; // bit depth
    ihdr[9] = 2; // colour type: RGB
    const stride = this.width * 3;
    const raw = Buffer.alloc((stride + 1) * this.height);
    for (let y = 0; y < this.height; y++) {
      raw[y * (stride + 1)] = 0; // filter: none
      raw.set(this.pixels.subarray(y * stride, (y + 1) * stride), y * (stride + 1) + 1);
    }
    return Buffer.concat([
      Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
      chunk('IHDR', ihdr),
      chunk('IDAT', deflateSync(raw, { level: 9 })),
      chunk('IEND', Buffer.alloc(0)),
    ]);
  }
}

function normalise(ch: string): string {
  if (ch === '×') return 'X';
  if (ch === '→') return '>';
  if (ch === '≤') return '<';
  if (ch === '≥') return '>';
  if (ch === '–' || ch === '—') return '-';
  return ch.toUpperCase();
}

const FONT: Record<string, readonly number[]> = {
  '0': [0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e],
  '1': [0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e],
  '2': [0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f],
  '3': [0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e],
  '4': [0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02],
  '5': [0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e],
  '6': [0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e],
  '7': [0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
  '8': [0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e],
  '9': [0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c],
  A: [0x0e, 0x11, 0x11, 0x11, 0x1f, 0x11, 0x11],
  B: [0x1e, 0x11, 0x11, 0x1e, 0x11, 0x11, 0x1e],
  C: [0x0e, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0e],
  D: [0x1c, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1c],
  E: [0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x1f],
  F: [0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x10],
  G: [0x0e, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0f],
  H: [0x11, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11],
  I: [0x0e, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e],
  J: [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0c],
  K: [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
  L: [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1f],
  M: [0x11, 0x1b, 0x15, 0x15, 0x11, 0x11, 0x11],
  N: [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
  O: [0x0e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e],
  P: [0x1e, 0x11, 0x11, 0x1e, 0x10, 0x10, 0x10],
  Q: [0x0e, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0d],
  R: [0x1e, 0x11, 0x11, 0x1e, 0x14, 0x12, 0x11],
  S: [0x0f, 0x10, 0x10, 0x0e, 0x01, 0x01, 0x1e],
  T: [0x1f, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
  U: [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e],
  V: [0x11, 0x11, 0x11, 0x11, 0x11, 0x0a, 0x04],
  W: [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0a],
  X: [0x11, 0x11, 0x0a, 0x04, 0x0a, 0x11, 0x11],
  Y: [0x11, 0x11, 0x11, 0x0a, 0x04, 0x04, 0x04],
  Z: [0x1f, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1f],
  ' ': [0, 0, 0, 0, 0, 0, 0],
  '.': [0, 0, 0, 0, 0, 0x0c, 0x0c],
  ',': [0, 0, 0, 0, 0x0c, 0x04, 0x08],
  ':': [0, 0x0c, 0x0c, 0, 0x0c, 0x0c, 0],
  ';': [0, 0x0c, 0x0c, 0, 0x0c, 0x04, 0x08],
  '-': [0, 0, 0, 0x1f, 0, 0, 0],
  '+': [0, 0x04, 0x04, 0x1f, 0x04, 0x04, 0],
  '/': [0, 0x01, 0x02, 0x04, 0x08, 0x10, 0],
  '%': [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03],
  '(': [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02],
  ')': [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08],
  '[': [0x0e, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0e],
  ']': [0x0e, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0e],
  '=': [0, 0, 0x1f, 0, 0x1f, 0, 0],
  _: [0, 0, 0, 0, 0, 0, 0x1f],
  '<': [0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02],
  '>': [0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08],
  '#': [0x0a, 0x0a, 0x1f, 0x0a, 0x1f, 0x0a, 0x0a],
  '*': [0, 0x04, 0x15, 0x0e, 0x15, 0x04, 0],
  '?': [0x0e, 0x11, 0x01, 0x02, 0x04, 0, 0x04],
  "'": [0x04, 0x04, 0x08, 0, 0, 0, 0],
  '"': [0x0a, 0x0a, 0, 0, 0, 0, 0],
  '!': [0x04, 0x04, 0x04, 0x04, 0x04, 0, 0x04],
  '@': [0x0e, 0x11, 0x17, 0x15, 0x17, 0x10, 0x0e],
};

export interface Series {
  name: string;
  color: Rgb;
  /** [x, y] points, x ascending; a y of NaN breaks the line. */
  points: readonly (readonly [number, number])[];
}

export interface Panel {
  yLabel: string;
  series: readonly Series[];
  /** Fixed top of the y axis; default: a round number above the largest value. */
  yMax?: number;
}

export interface ChartSpec {
  title: string;
  xLabel: string;
  /** Label for an x value (default: the number). */
  xFormat?: (x: number) => string;
  panels: readonly Panel[];
  width?: number;
  panelHeight?: number;
  /** Notes printed under the chart, one line each. */
  notes?: readonly string[];
}

export const COLORS = {
  blue: [0, 94, 184] as Rgb,
  red: [218, 41, 28] as Rgb,
  green: [0, 150, 57] as Rgb,
  orange: [237, 139, 0] as Rgb,
  purple: [51, 0, 114] as Rgb,
  grey: [118, 134, 146] as Rgb,
  black: [33, 43, 50] as Rgb,
  pink: [174, 37, 115] as Rgb,
  teal: [0, 164, 153] as Rgb,
} as const;
export const PALETTE: readonly Rgb[] = Object.values(COLORS);

/** A round step giving about `target` ticks up to `max`. */
export function niceStep(max: number, target = 5): number {
  if (!(max > 0)) return 1;
  const raw = max / target;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  const step = norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 2.5 ? 2.5 : norm <= 5 ? 5 : 10;
  return step * mag;
}

function formatTick(v: number): string {
  if (v === 0) return '0';
  if (Math.abs(v) >= 10_000) return `${Math.round(v / 1000)}K`;
  if (Math.abs(v) >= 100) return String(Math.round(v));
  if (Math.abs(v) >= 1) return String(Math.round(v * 10) / 10);
  return String(Math.round(v * 100) / 100);
}

export function renderChart(spec: ChartSpec): Buffer {
  const width = spec.width ?? 1200;
  const panelHeight = spec.panelHeight ?? 260;
  const left = 80;
  const right = 24;
  const top = 62;
  const gap = 62;
  const bottomAxis = 40;
  const notes = spec.notes ?? [];
  const height =
    top + spec.panels.length * panelHeight + (spec.panels.length - 1) * gap + bottomAxis + notes.length * 14 + 8;
  const c = new Canvas(width, height);
  c.text(left, 12, spec.title, COLORS.black, 2);

  const allX = spec.panels.flatMap((p) => p.series.flatMap((s) => s.points.map((pt) => pt[0])));
  const xMin = allX.length > 0 ? Math.min(...allX) : 0;
  const xMax = allX.length > 0 ? Math.max(...allX) : 1;
  const xSpan = xMax - xMin || 1;
  const plotW = width - left - right;
  const xOf = (x: number) => left + ((x - xMin) / xSpan) * plotW;
  const xFormat = spec.xFormat ?? formatTick;

  spec.panels.forEach((panel, i) => {
    const y0 = top + i * (panelHeight + gap);
    const values = panel.series.flatMap((s) => s.points.map((p) => p[1]).filter((v) => Number.isFinite(v)));
    const dataMax = values.length > 0 ? Math.max(...values) : 1;
    const step = niceStep(panel.yMax ?? dataMax * 1.05);
    const yMax = panel.yMax ?? Math.max(step, Math.ceil((dataMax * 1.05) / step) * step);
    const yOf = (v: number) => y0 + panelHeight - (Math.min(v, yMax) / yMax) * panelHeight;
    // Grid and y ticks
    for (let v = 0; v <= yMax + step / 1000; v += step) {
      const y = yOf(v);
      c.line(left, y, width - right, y, [225, 228, 232]);
      const label = formatTick(v);
      c.text(left - 8 - Canvas.textWidth(label), y - 3, label, COLORS.grey);
    }
    // x ticks
    const xStep = niceStep(xSpan, 10);
    for (let x = Math.ceil(xMin / xStep) * xStep; x <= xMax + xStep / 1000; x += xStep) {
      const px = xOf(x);
      c.line(px, y0, px, y0 + panelHeight, [240, 242, 244]);
      c.line(px, y0 + panelHeight, px, y0 + panelHeight + 4, COLORS.grey);
      const label = xFormat(x);
      c.text(px - Canvas.textWidth(label) / 2, y0 + panelHeight + 8, label, COLORS.grey);
    }
    c.line(left, y0, left, y0 + panelHeight, COLORS.grey);
    c.line(left, y0 + panelHeight, width - right, y0 + panelHeight, COLORS.grey);
    c.text(left, y0 - 28, panel.yLabel, COLORS.black);
    // Series
    for (const s of panel.series) {
      let prev: readonly [number, number] | null = null;
      for (const p of s.points) {
        if (!Number.isFinite(p[1])) {
          prev = null;
          continue;
        }
        if (prev) c.line(xOf(prev[0]), yOf(prev[1]), xOf(p[0]), yOf(p[1]), s.color, 2);
        else c.fill(xOf(p[0]) - 1, yOf(p[1]) - 1, 3, 3, s.color);
        prev = p;
      }
    }
    // Legend, on its own row above the panel, right-aligned
    let lx = width - right - 8;
    for (const s of [...panel.series].reverse()) {
      const w = Canvas.textWidth(s.name);
      if (lx - w - 30 < left) break;
      lx -= w;
      c.text(lx, y0 - 13, s.name, s.color);
      lx -= 16;
      c.fill(lx, y0 - 11, 12, 3, s.color);
      lx -= 14;
    }
  });
  const axisY = top + spec.panels.length * panelHeight + (spec.panels.length - 1) * gap + 22;
  c.text(left + plotW / 2 - Canvas.textWidth(spec.xLabel) / 2, axisY, spec.xLabel, COLORS.black);
  notes.forEach((n, i) => {
    c.text(left, axisY + 16 + i * 14, n, COLORS.grey);
  });
  return c.png();
}
