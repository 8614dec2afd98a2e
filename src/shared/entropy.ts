/**
 * How random a chunk looks: Shannon entropy in bits per byte (0 = one repeated byte, 8 = uniformly
 * random) of a fixed sample — `SLICES` slices of `SLICE` bytes spread evenly over the chunk, so that
 * encryption of a file's head only (as some ransomware does) is still seen. The agent computes it on
 * every new chunk and reports the mean; the server computes the same measure on chunks it reads back,
 * so a lying agent cannot hide encrypted data. Compressed data scores high too; the change rate is
 * what tells an encrypted disk from a normal one.
 */
export const ENTROPY_SLICES = 4;
export const ENTROPY_SLICE = 16 * 1024;

export function sampleEntropy(buf: Uint8Array): number {
  if (buf.length === 0) return 0;
  const counts = new Uint32Array(256);
  let n = 0;
  const count = (from: number, to: number) => {
    for (let i = from; i < to; i++) counts[buf[i]!]!++;
    n += to - from;
  };
  if (buf.length <= ENTROPY_SLICES * ENTROPY_SLICE) count(0, buf.length);
  else {
    const step = Math.floor((buf.length - ENTROPY_SLICE) / (ENTROPY_SLICES - 1));
    for (let s = 0; s < ENTROPY_SLICES; s++) count(s * step, s * step + ENTROPY_SLICE);
  }
  let h = 0;
  for (const c of counts) {
    if (c === 0) continue;
    const p = c / n;
    h -= p * Math.log2(p);
  }
  return h;
}
