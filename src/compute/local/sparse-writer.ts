import fsp from "node:fs/promises";
import { Writable } from "node:stream";

/** Zero blocks are holes: file systems allocate in 4 KiB blocks, so smaller runs gain nothing. */
const SPARSE_BLOCK = 64 * 1024;

export interface SparseWriterOptions {
  /**
   * Continue an earlier download: the file is kept up to this many bytes (cut or extended with a
   * hole to exactly this length) and writing goes on from there.
   */
  start?: number;
  /**
   * Called (at most every `durableEveryMs`, and awaited) with how many bytes from the start are
   * on disk for good: written and flushed with fdatasync. What a resumed download may keep.
   */
  onDurable?: (bytes: number) => Promise<void>;
  durableEveryMs?: number;
}

/**
 * A write stream that leaves every all-zero, block-aligned 64 KiB run as a hole (it seeks instead of
 * writing) and finally sets the file to `size` bytes, so trailing zeros are holes too.
 */
export function sparseFileWriter(file: string, size?: number, opts: SparseWriterOptions = {}): Writable {
  let fh: fsp.FileHandle | undefined;
  const start = opts.start ?? 0;
  let pos = start;
  let lastDurable = Date.now();
  const writeRun = async (buf: Buffer, at: number) => {
    let off = 0;
    while (off < buf.length) {
      const { bytesWritten } = await fh!.write(buf, off, buf.length - off, at + off);
      off += bytesWritten;
    }
  };
  return new Writable({
    highWaterMark: 4 * 1024 * 1024,
    construct(cb) {
      (async () => {
        const h = await fsp.open(file, start > 0 ? "r+" : "w");
        try {
          if (start > 0) await h.truncate(start);
        } catch (err) {
          await h.close();
          throw err;
        }
        fh = h;
      })().then(() => cb(), cb);
    },
    write(chunk: Buffer, _enc, cb) {
      (async () => {
        let off = 0;
        while (off < chunk.length) {
          // Up to the next block boundary of the file, so holes line up with the file system's blocks.
          const len = Math.min(chunk.length - off, SPARSE_BLOCK - ((pos + off) % SPARSE_BLOCK));
          let end = off + len;
          if (!isZeroRange(chunk, off, end)) {
            // Extend the data run over following non-zero blocks: one write instead of many.
            while (end < chunk.length) {
              const next = Math.min(chunk.length, end + SPARSE_BLOCK);
              if (isZeroRange(chunk, end, next)) break;
              end = next;
            }
            await writeRun(chunk.subarray(off, end), pos + off);
          }
          off = end;
        }
        pos += chunk.length;
        if (opts.onDurable && Date.now() - lastDurable >= (opts.durableEveryMs ?? 1000)) {
          await fh!.datasync();
          lastDurable = Date.now();
          await opts.onDurable(pos);
        }
      })().then(() => cb(), cb);
    },
    final(cb) {
      fh!
        .truncate(Math.max(pos, size ?? 0))
        .then(() => fh!.sync())
        .then(() => cb(), cb);
    },
    destroy(err, cb) {
      const h = fh;
      fh = undefined;
      if (!h) return cb(err);
      h.close().then(
        () => cb(err),
        () => cb(err),
      );
    },
  });
}

const ZERO_BLOCK = Buffer.alloc(SPARSE_BLOCK);

/** buf[start, end) is all zero (end - start <= SPARSE_BLOCK; a native compare). */
function isZeroRange(buf: Buffer, start: number, end: number): boolean {
  return buf.compare(ZERO_BLOCK, 0, end - start, start, end) === 0;
}
