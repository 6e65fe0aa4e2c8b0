/**
 * Checks an uploaded photo (a portrait taken at an identity check, a selfie or a photo ID image sent with Apply for
 * Care ID) and strips its metadata, without an image library. Pure: bytes in, bytes out.
 *
 * - The format is decided by the bytes (magic numbers), never by the declared type or file name.
 * - Only JPEG (baseline or progressive, Huffman coded) and PNG are accepted; anything else, truncated or corrupt files
 *   are refused. The size limit is checked before anything is read.
 * - Width and height come from the JPEG SOF / PNG IHDR header and must be sane (a huge canvas is a decompression bomb).
 * - Metadata goes: a phone photo's EXIF holds GPS position, time and device serial numbers, which the card and the RA
 *   screens have no business showing (UK GDPR data minimisation). JPEG keeps every segment needed to decode the image
 *   byte for byte and drops APP1–APP15 (EXIF, XMP, ICC profile, Photoshop IRB…), COM and any non-JFIF APP0; PNG keeps
 *   IHDR, PLTE, IDAT, IEND, tRNS, gAMA and sRGB. Everything after the end of the image (EOI / IEND) is dropped, which
 *   also defuses polyglots that hide a ZIP, PDF or HTML payload behind a valid image.
 */
import { createHash } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { AppError } from '../errors.ts';

export const MAX_PHOTO_BYTES = 5 * 1024 * 1024;
export const MAX_PHOTO_SIDE = 10_000;
export const MAX_PHOTO_PIXELS = 40_000_000;

export type PhotoMediaType = 'image/jpeg' | 'image/png';
export type PhotoProblem =
  | 'too_large'
  | 'empty'
  | 'not_an_image'
  | 'truncated'
  | 'corrupt'
  | 'unsupported'
  | 'dimensions';

export interface CheckedPhoto {
  mediaType: PhotoMediaType;
  /** The image with its metadata removed: what is stored and shown. */
  bytes: Buffer;
  width: number;
  height: number;
  /** SHA-256 (hex) of `bytes`. */
  sha256: string;
  /** What was removed, for the record (segment or chunk names, 'trailing data'). */
  removed: string[];
}

function refuse(problem: PhotoProblem, detail?: string): never {
  throw new AppError(problem === 'too_large' ? 'photo.too_large' : 'photo.invalid', {
    problem,
    ...(detail ? { detail } : {}),
  });
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** Which format the bytes are, by their first bytes only. */
export function sniffImageType(bytes: Uint8Array): PhotoMediaType | null {
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'image/jpeg';
  if (bytes.length >= 8 && PNG_SIGNATURE.equals(Buffer.from(bytes.buffer, bytes.byteOffset, 8))) return 'image/png';
  return null;
}

/** Checks a photo and returns it without metadata; throws `photo.too_large` or `photo.invalid` with the problem. */
export function checkPhoto(input: Uint8Array): CheckedPhoto {
  // Refused on its length alone: nothing of an oversized upload is parsed.
  if (input.length > MAX_PHOTO_BYTES) refuse('too_large');
  if (input.length === 0) refuse('empty');
  const bytes = Buffer.from(input.buffer, input.byteOffset, input.length);
  const type = sniffImageType(bytes);
  if (!type) refuse('not_an_image');
  const stripped = type === 'image/jpeg' ? stripJpeg(bytes) : stripPng(bytes);
  const { width, height } = stripped;
  if (
    width < 1 ||
    height < 1 ||
    width > MAX_PHOTO_SIDE ||
    height > MAX_PHOTO_SIDE ||
    width * height > MAX_PHOTO_PIXELS
  ) {
    refuse('dimensions', `${width}x${height}`);
  }
  return {
    mediaType: type,
    bytes: stripped.bytes,
    width,
    height,
    sha256: createHash('sha256').update(stripped.bytes).digest('hex'),
    removed: stripped.removed,
  };
}

/**
 * Decodes a base64 upload, refusing it on its length before decoding when it must be larger than the photo limit, and
 * refusing anything that is not base64.
 */
export function photoBytesFromBase64(data: string): Buffer {
  if (Math.floor((data.length * 3) / 4) > MAX_PHOTO_BYTES + 64) refuse('too_large');
  const prefix = /^data:image\/(?:jpeg|png);base64,/.exec(data.slice(0, 40));
  const trimmed = prefix ? data.slice(prefix[0].length) : data;
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(trimmed) || trimmed.length % 4 === 1) refuse('not_an_image', 'not base64');
  return Buffer.from(trimmed, 'base64');
}

interface Stripped {
  bytes: Buffer;
  width: number;
  height: number;
  removed: string[];
}

// SOF0 baseline, SOF1 extended sequential, SOF2 progressive (Huffman). Lossless, hierarchical and arithmetic-coded
// frames are refused: browsers do not show them and nobody's phone makes them.
const SUPPORTED_SOF = new Set([0xc0, 0xc1, 0xc2]);
const OTHER_SOF = new Set([0xc3, 0xc5, 0xc6, 0xc7, 0xc9, 0xca, 0xcb, 0xcd, 0xce, 0xcf]);

function markerName(m: number): string {
  if (m >= 0xe0 && m <= 0xef) return `APP${m - 0xe0}`;
  if (m === 0xfe) return 'COM';
  return `0xFF${m.toString(16).toUpperCase()}`;
}

/** A plain JFIF APP0 (16 bytes, no thumbnail): the one APP segment kept, as some decoders expect it. */
function isPlainJfif(b: Buffer, dataStart: number, segmentLength: number): boolean {
  return segmentLength === 16 && b.toString('latin1', dataStart, dataStart + 5) === 'JFIF\0';
}

function stripJpeg(b: Buffer): Stripped {
  const parts: Buffer[] = [b.subarray(0, 2)];
  const removed: string[] = [];
  let size: { width: number; height: number } | null = null;
  let scans = 0;
  let i = 2;
  for (;;) {
    if (i >= b.length) refuse('truncated', 'no end of image');
    if (b[i] !== 0xff) refuse('corrupt', `expected a marker at byte ${i}`);
    while (i < b.length && b[i] === 0xff) i++; // fill bytes
    if (i >= b.length) refuse('truncated');
    const marker = b[i]!;
    const markerStart = i - 1;
    i++;
    if (marker === 0xd9) {
      if (!size || scans === 0) refuse('corrupt', 'no image data');
      parts.push(b.subarray(markerStart, i));
      if (i < b.length) removed.push('trailing data');
      break;
    }
    if (marker === 0xd8 || marker === 0x00) refuse('corrupt', 'unexpected marker');
    if ((marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) {
      parts.push(b.subarray(markerStart, i));
      continue;
    }
    if (i + 2 > b.length) refuse('truncated');
    const length = b.readUInt16BE(i);
    if (length < 2) refuse('corrupt', 'bad segment length');
    const end = i + length;
    if (end > b.length) refuse('truncated');
    if (OTHER_SOF.has(marker)) refuse('unsupported', 'only baseline and progressive JPEG are accepted');
    if (SUPPORTED_SOF.has(marker)) {
      if (size) refuse('corrupt', 'more than one frame');
      if (length < 8) refuse('corrupt', 'short frame header');
      size = { height: b.readUInt16BE(i + 3), width: b.readUInt16BE(i + 5) };
    }
    const drop =
      (marker >= 0xe1 && marker <= 0xef) || marker === 0xfe || (marker === 0xe0 && !isPlainJfif(b, i + 2, length));
    if (drop) removed.push(markerName(marker));
    else parts.push(b.subarray(markerStart, end));
    i = end;
    if (marker === 0xda) {
      // Start of scan: entropy-coded data runs to the next marker (FF followed by anything but 00 or a restart).
      if (!size) refuse('corrupt', 'scan before frame header');
      scans++;
      let k = i;
      for (;;) {
        k = b.indexOf(0xff, k);
        if (k === -1 || k + 1 >= b.length) refuse('truncated', 'image data ends early');
        const next = b[k + 1]!;
        if (next === 0x00 || (next >= 0xd0 && next <= 0xd7)) {
          k += 2;
          continue;
        }
        break;
      }
      parts.push(b.subarray(i, k));
      i = k;
    }
  }
  if (!size) refuse('corrupt');
  return { bytes: Buffer.concat(parts), ...size, removed };
}

const PNG_KEEP = new Set(['IHDR', 'PLTE', 'IDAT', 'IEND', 'tRNS', 'gAMA', 'sRGB']);
// Allowed bit depths per colour type (PNG spec, table 11.1).
const PNG_DEPTHS: Record<number, readonly number[]> = {
  0: [1, 2, 4, 8, 16],
  2: [8, 16],
  3: [1, 2, 4, 8],
  4: [8, 16],
  6: [8, 16],
};

function stripPng(b: Buffer): Stripped {
  const parts: Buffer[] = [PNG_SIGNATURE];
  const removed: string[] = [];
  let size: { width: number; height: number } | null = null;
  let colourType = -1;
  let sawPalette = false;
  let sawData = false;
  let i = 8;
  for (;;) {
    if (i + 12 > b.length) refuse('truncated', 'no IEND chunk');
    const length = b.readUInt32BE(i);
    if (length > 0x7fffffff) refuse('corrupt', 'bad chunk length');
    const type = b.toString('latin1', i + 4, i + 8);
    if (!/^[A-Za-z]{4}$/.test(type)) refuse('corrupt', 'bad chunk type');
    const end = i + 12 + length;
    if (end > b.length) refuse('truncated');
    const crc = b.readUInt32BE(i + 8 + length);
    if (crc32(b.subarray(i + 4, i + 8 + length)) !== crc) refuse('corrupt', `${type} CRC does not match`);
    if (!size && type !== 'IHDR') refuse('corrupt', 'IHDR must come first');
    if (type === 'IHDR') {
      if (size) refuse('corrupt', 'two IHDR chunks');
      if (length !== 13) refuse('corrupt', 'bad IHDR');
      size = { width: b.readUInt32BE(i + 8), height: b.readUInt32BE(i + 12) };
      const depth = b[i + 16]!;
      colourType = b[i + 17]!;
      if (!PNG_DEPTHS[colourType]?.includes(depth)) refuse('corrupt', 'bad colour type or bit depth');
      if (b[i + 18] !== 0 || b[i + 19] !== 0 || (b[i + 20] !== 0 && b[i + 20] !== 1)) refuse('corrupt', 'bad IHDR');
    }
    if (type === 'PLTE') sawPalette = true;
    if (type === 'IDAT') sawData = true;
    if (PNG_KEEP.has(type)) {
      parts.push(b.subarray(i, end));
    } else if ((b[i + 4]! & 0x20) === 0) {
      // An unknown critical chunk (upper-case first letter) means the image cannot be shown without it.
      refuse('unsupported', `critical chunk ${type}`);
    } else {
      removed.push(type);
    }
    i = end;
    if (type === 'IEND') {
      if (length !== 0) refuse('corrupt', 'bad IEND');
      if (i < b.length) removed.push('trailing data');
      break;
    }
  }
  if (!size || !sawData) refuse('corrupt', 'no image data');
  if (colourType === 3 && !sawPalette) refuse('corrupt', 'palette image without PLTE');
  return { bytes: Buffer.concat(parts), ...size, removed };
}
