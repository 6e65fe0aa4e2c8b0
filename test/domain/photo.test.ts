import assert from 'node:assert/strict';
import { test } from 'node:test';
import { crc32, deflateSync } from 'node:zlib';
import { AppError } from '../../src/domain/errors.ts';
import { checkPhoto, MAX_PHOTO_BYTES, photoBytesFromBase64, sniffImageType } from '../../src/domain/identity/photo.ts';

// ---------------------------------------------------------------------------------------------------------------
// Hand-made images

function chunk(type: string, data: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])));
  return Buffer.concat([head, data, crc]);
}

function ihdr(width: number, height: number, depth = 8, colourType = 2): Buffer {
  const d = Buffer.alloc(13);
  d.writeUInt32BE(width, 0);
  d.writeUInt32BE(height, 4);
  d[8] = depth;
  d[9] = colourType;
  return chunk('IHDR', d);
}

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** An RGB PNG of width×height red pixels, with extra chunks placed before the image data. */
function png(width = 1, height = 1, extra: Buffer[] = []): Buffer {
  const row = Buffer.concat([Buffer.from([0]), Buffer.alloc(width * 3, 0)]);
  for (let x = 0; x < width; x++) row[1 + x * 3] = 0xff;
  const raw = Buffer.concat(Array.from({ length: height }, () => row));
  return Buffer.concat([SIGNATURE, ihdr(width, height), ...extra, chunk('IDAT', deflateSync(raw)), chunk('IEND')]);
}

function segment(marker: number, data: Buffer): Buffer {
  const head = Buffer.from([0xff, marker, 0, 0]);
  head.writeUInt16BE(data.length + 2, 2);
  return Buffer.concat([head, data]);
}

const JFIF = segment(0xe0, Buffer.from([0x4a, 0x46, 0x49, 0x46, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0]));
const DQT = segment(0xdb, Buffer.concat([Buffer.from([0]), Buffer.alloc(64, 1)]));
const DHT = segment(0xc4, Buffer.concat([Buffer.from([0]), Buffer.from([0, 1]), Buffer.alloc(14), Buffer.from([0])]));
const SOS = segment(0xda, Buffer.from([1, 1, 0, 0, 63, 0]));
// Entropy-coded data with a stuffed FF00 and a restart marker inside, which must not end the scan.
const SCAN = Buffer.from([0x12, 0x34, 0xff, 0x00, 0x56, 0xff, 0xd0, 0x78, 0x9a]);

function sof(width: number, height: number, marker = 0xc0): Buffer {
  const d = Buffer.from([8, 0, 0, 0, 0, 1, 1, 0x11, 0]);
  d.writeUInt16BE(height, 1);
  d.writeUInt16BE(width, 3);
  return segment(marker, d);
}

/** A JPEG's segments: what must survive stripping byte for byte. */
function jpegCore(width = 2, height = 3, sofMarker = 0xc0): Buffer[] {
  return [DQT, sof(width, height, sofMarker), DHT, SOS, SCAN];
}
const SOI = Buffer.from([0xff, 0xd8]);
const EOI = Buffer.from([0xff, 0xd9]);

function jpeg(metadata: Buffer[] = [], width = 2, height = 3): Buffer {
  return Buffer.concat([SOI, JFIF, ...metadata, ...jpegCore(width, height), EOI]);
}

const EXIF = segment(
  0xe1,
  Buffer.concat([Buffer.from('Exif\0\0MM\0*', 'latin1'), Buffer.from('GPSLatitude 51.5074N Serial SN-1234567')]),
);
const XMP = segment(0xe1, Buffer.from('http://ns.adobe.com/xap/1.0/\0<x:xmpmeta>creator: Dr Secret</x:xmpmeta>'));
const ICC = segment(0xe2, Buffer.concat([Buffer.from('ICC_PROFILE\0\x01\x01', 'latin1'), Buffer.alloc(40, 7)]));
const COMMENT = segment(0xfe, Buffer.from('<html><script>alert(1)</script></html>'));

function problemOf(fn: () => unknown): { code: string; problem: string } {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof AppError, String(err));
    return { code: err.code, problem: (err.details as { problem: string }).problem };
  }
  assert.fail('expected the photo to be refused');
}

// ---------------------------------------------------------------------------------------------------------------

test('a plain 1×1 PNG is accepted unchanged, with its dimensions read from IHDR', () => {
  const image = png(1, 1);
  const out = checkPhoto(image);
  assert.equal(out.mediaType, 'image/png');
  assert.deepEqual([out.width, out.height], [1, 1]);
  assert.ok(out.bytes.equals(image));
  assert.deepEqual(out.removed, []);
  assert.match(out.sha256, /^[0-9a-f]{64}$/);
});

test('PNG metadata chunks (tEXt, zTXt, iTXt, eXIf, tIME) are dropped; the image chunks stay byte for byte', () => {
  const keep = [chunk('gAMA', Buffer.from([0, 0, 0xb1, 0x8f])), chunk('sRGB', Buffer.from([0]))];
  const metadata = [
    chunk('tEXt', Buffer.from('Comment\0taken at 10 Downing Street')),
    chunk('zTXt', Buffer.concat([Buffer.from('Author\0\0'), deflateSync(Buffer.from('Dr Secret'))])),
    chunk('iTXt', Buffer.from('XML:com.adobe.xmp\0\0\0\0\0<x:xmpmeta/>')),
    chunk('eXIf', Buffer.from('MM\0*GPS 51.5N')),
    chunk('tIME', Buffer.from([0x07, 0xea, 11, 26, 9, 0, 0])),
  ];
  const out = checkPhoto(png(4, 2, [...keep, ...metadata]));
  assert.deepEqual(out.removed, ['tEXt', 'zTXt', 'iTXt', 'eXIf', 'tIME']);
  assert.ok(out.bytes.equals(png(4, 2, keep)), 'exactly the original image chunks remain');
  for (const secret of ['Downing', 'Secret', 'xmpmeta', 'GPS']) assert.equal(out.bytes.includes(secret), false);
  // and the result is itself a valid PNG (every CRC checked again)
  assert.ok(checkPhoto(out.bytes).bytes.equals(out.bytes));
});

test('a PNG with a wrong CRC, a missing IHDR or an unknown critical chunk is refused', () => {
  const bad = png(2, 2);
  bad[bad.length - 20] ^= 0xff; // inside IDAT
  assert.deepEqual(
    problemOf(() => checkPhoto(bad)),
    { code: 'photo.invalid', problem: 'corrupt' },
  );
  const noHeader = Buffer.concat([SIGNATURE, chunk('IDAT', deflateSync(Buffer.alloc(4))), chunk('IEND')]);
  assert.equal(problemOf(() => checkPhoto(noHeader)).problem, 'corrupt');
  assert.equal(problemOf(() => checkPhoto(png(1, 1, [chunk('ZZZZ', Buffer.from('x'))]))).problem, 'unsupported');
  const badDepth = Buffer.concat([
    SIGNATURE,
    ihdr(1, 1, 3, 2),
    chunk('IDAT', deflateSync(Buffer.alloc(4))),
    chunk('IEND'),
  ]);
  assert.equal(problemOf(() => checkPhoto(badDepth)).problem, 'corrupt');
});

test('JPEG: EXIF, XMP, ICC profile and comments are dropped; every segment needed to decode stays byte for byte', () => {
  const original = jpeg([EXIF, XMP, ICC, COMMENT], 640, 480);
  const out = checkPhoto(original);
  assert.equal(out.mediaType, 'image/jpeg');
  assert.deepEqual([out.width, out.height], [640, 480]);
  assert.deepEqual(out.removed, ['APP1', 'APP1', 'APP2', 'COM']);
  assert.ok(out.bytes.equals(jpeg([], 640, 480)));
  for (const secret of ['Exif', 'GPS', 'SN-1234567', 'Dr Secret', 'ICC_PROFILE', '<script>']) {
    assert.equal(out.bytes.includes(secret), false, secret);
  }
  assert.ok(checkPhoto(out.bytes).bytes.equals(out.bytes), 'stripping is idempotent');
});

test('JPEG: a progressive image with two scans keeps both; a non-JFIF APP0 is dropped', () => {
  const progressive = Buffer.concat([
    SOI,
    segment(0xe0, Buffer.from('JFXX\0thumbnail-bytes')),
    DQT,
    sof(8, 8, 0xc2),
    DHT,
    SOS,
    SCAN,
    DHT,
    SOS,
    Buffer.from([1, 2, 3]),
    EOI,
  ]);
  const out = checkPhoto(progressive);
  assert.deepEqual(out.removed, ['APP0']);
  assert.deepEqual([out.width, out.height], [8, 8]);
  assert.ok(
    out.bytes.equals(Buffer.concat([SOI, DQT, sof(8, 8, 0xc2), DHT, SOS, SCAN, DHT, SOS, Buffer.from([1, 2, 3]), EOI])),
  );
});

test('the format is decided by the bytes: a text file renamed .png, a GIF, a PDF are refused', () => {
  assert.equal(sniffImageType(png()), 'image/png');
  assert.equal(sniffImageType(jpeg()), 'image/jpeg');
  for (const bytes of [
    Buffer.from('This is not a photo, just a text file called selfie.png\n'),
    Buffer.from('GIF89a\x01\x00\x01\x00\x00\x00\x00;', 'latin1'),
    Buffer.from('%PDF-1.7\n%\xe2\xe3\xcf\xd3\n', 'latin1'),
    Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'),
  ]) {
    assert.deepEqual(
      problemOf(() => checkPhoto(bytes)),
      { code: 'photo.invalid', problem: 'not_an_image' },
    );
  }
  assert.equal(problemOf(() => checkPhoto(Buffer.alloc(0))).problem, 'empty');
});

test('truncated files are refused', () => {
  const p = png(3, 3);
  assert.equal(problemOf(() => checkPhoto(p.subarray(0, p.length - 30))).problem, 'truncated');
  assert.equal(problemOf(() => checkPhoto(p.subarray(0, 8))).problem, 'truncated');
  const j = jpeg([EXIF]);
  assert.equal(problemOf(() => checkPhoto(j.subarray(0, j.length - 2))).problem, 'truncated', 'no EOI');
  assert.equal(problemOf(() => checkPhoto(j.subarray(0, 30))).problem, 'truncated', 'cut inside a segment');
  assert.equal(problemOf(() => checkPhoto(Buffer.from([0xff, 0xd8, 0xff]))).problem, 'truncated');
});

test('a 50 MB upload is refused on its size at once, without being parsed', () => {
  const huge = Buffer.alloc(50 * 1024 * 1024);
  png().copy(huge); // a valid PNG at the start, then 50 MB of zeros
  const started = performance.now();
  assert.deepEqual(
    problemOf(() => checkPhoto(huge)),
    { code: 'photo.too_large', problem: 'too_large' },
  );
  assert.ok(performance.now() - started < 50, 'refused without reading it');
  const justOver = Buffer.concat([png(), Buffer.alloc(MAX_PHOTO_BYTES)]);
  assert.equal(problemOf(() => checkPhoto(justOver)).code, 'photo.too_large');
  // as base64, it is refused on the string's length before anything is decoded
  const b64 = 'A'.repeat(Math.ceil((50 * 1024 * 1024 * 4) / 3));
  const t2 = performance.now();
  assert.equal(problemOf(() => photoBytesFromBase64(b64)).code, 'photo.too_large');
  assert.ok(performance.now() - t2 < 50);
  assert.equal(problemOf(() => photoBytesFromBase64('not base64!')).problem, 'not_an_image');
  assert.ok(photoBytesFromBase64(png().toString('base64')).equals(png()));
  assert.ok(photoBytesFromBase64(`data:image/png;base64,${png().toString('base64')}`).equals(png()));
});

test('polyglots: whatever hides behind the end of the image, or in a comment, is cut off', () => {
  const zip = Buffer.from('PK\x03\x04\x14\x00\x00\x00evil.js\x00PK\x05\x06', 'latin1');
  const html = Buffer.from('<html><body><script>fetch("/steal")</script></body></html>');
  const jpegZip = Buffer.concat([jpeg(), zip, html]);
  const j = checkPhoto(jpegZip);
  assert.ok(j.bytes.equals(jpeg()));
  assert.deepEqual(j.removed, ['trailing data']);
  const pngHtml = Buffer.concat([png(2, 2), html]);
  const p = checkPhoto(pngHtml);
  assert.ok(p.bytes.equals(png(2, 2)));
  assert.deepEqual(p.removed, ['trailing data']);
  // a JPEG/HTML polyglot that keeps its markup in a comment segment near the start
  const jpegHtml = Buffer.concat([SOI, COMMENT, JFIF, ...jpegCore(), EOI]);
  const out = checkPhoto(jpegHtml);
  assert.equal(out.bytes.includes('<script>'), false);
  assert.ok(out.bytes.equals(jpeg()));
});

test('dimensions must be sane: no zero sides, no decompression-bomb canvases', () => {
  const zero = Buffer.concat([SIGNATURE, ihdr(0, 5), chunk('IDAT', deflateSync(Buffer.alloc(1))), chunk('IEND')]);
  assert.equal(problemOf(() => checkPhoto(zero)).problem, 'dimensions');
  const bomb = Buffer.concat([
    SIGNATURE,
    ihdr(30_000, 30_000),
    chunk('IDAT', deflateSync(Buffer.alloc(10))),
    chunk('IEND'),
  ]);
  assert.equal(problemOf(() => checkPhoto(bomb)).problem, 'dimensions');
  assert.equal(problemOf(() => checkPhoto(jpeg([], 0, 10))).problem, 'dimensions');
  assert.equal(problemOf(() => checkPhoto(jpeg([], 9000, 9000))).problem, 'dimensions');
});

test('JPEG frames other than baseline and progressive Huffman are refused, as are files with no frame or no scan', () => {
  const arithmetic = Buffer.concat([SOI, ...jpegCore(2, 2, 0xc9), EOI]);
  assert.equal(problemOf(() => checkPhoto(arithmetic)).problem, 'unsupported');
  const noFrame = Buffer.concat([SOI, DQT, DHT, EOI]);
  assert.equal(problemOf(() => checkPhoto(noFrame)).problem, 'corrupt');
  const scanFirst = Buffer.concat([SOI, SOS, SCAN, EOI]);
  assert.equal(problemOf(() => checkPhoto(scanFirst)).problem, 'corrupt');
  const garbage = Buffer.concat([SOI, JFIF, Buffer.from('garbage')]);
  assert.equal(problemOf(() => checkPhoto(garbage)).problem, 'corrupt');
});
