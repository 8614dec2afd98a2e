import { inflateSync } from "node:zlib";

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

export interface PngInfo {
  width: number;
  height: number;
  /** True when every pixel has the same value (a black or empty console: no boot evidence). */
  uniform: boolean;
}

/** Reads a PNG's size and whether it shows anything (8-bit, non-interlaced RGB/RGBA/grey, as QEMU writes). */
export function inspectPng(png: Buffer): PngInfo {
  if (png.length < 33 || !png.subarray(0, 8).equals(SIGNATURE)) throw new Error("not a PNG");
  let offset = 8;
  let width = 0;
  let height = 0;
  let bitDepth = 8;
  let colorType = 2;
  const idat: Buffer[] = [];
  while (offset + 8 <= png.length) {
    const len = png.readUInt32BE(offset);
    const type = png.toString("latin1", offset + 4, offset + 8);
    const data = png.subarray(offset + 8, offset + 8 + len);
    if (type === "IHDR") {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      bitDepth = data[8]!;
      colorType = data[9]!;
    } else if (type === "IDAT") idat.push(data);
    else if (type === "IEND") break;
    offset += 12 + len;
  }
  if (!width || !height) throw new Error("PNG without IHDR");
  const channels = { 0: 1, 2: 3, 4: 2, 6: 4 }[colorType as 0 | 2 | 4 | 6] ?? 3;
  const stride = Math.ceil((width * channels * bitDepth) / 8);
  const raw = inflateSync(Buffer.concat(idat));
  // Undo the per-row filters (None/Sub/Up/Average/Paeth) and compare every pixel with the first.
  const bpp = Math.max(1, Math.ceil((channels * bitDepth) / 8));
  let prev = Buffer.alloc(stride);
  let first: Buffer | undefined;
  let uniform = true;
  for (let y = 0; y < height && uniform; y++) {
    const filter = raw[y * (stride + 1)]!;
    const line = Buffer.from(raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1)));
    for (let x = 0; x < stride; x++) {
      const a = x >= bpp ? line[x - bpp]! : 0;
      const b = prev[x]!;
      const c = x >= bpp ? prev[x - bpp]! : 0;
      const add = filter === 1 ? a : filter === 2 ? b : filter === 3 ? (a + b) >> 1 : filter === 4 ? paeth(a, b, c) : 0;
      line[x] = (line[x]! + add) & 0xff;
    }
    first ??= line.subarray(0, bpp);
    for (let x = 0; x < stride; x += bpp) {
      if (!line.subarray(x, x + bpp).equals(first)) {
        uniform = false;
        break;
      }
    }
    prev = line;
  }
  return { width, height, uniform };
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}
