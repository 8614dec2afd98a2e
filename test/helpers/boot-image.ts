import { randomBytes } from "node:crypto";

/**
 * A tiny bootable raw disk for tests that boot a real VM: a hand-assembled 16-bit boot sector
 * (BIOS loads it at 0000:7C00) that writes `marker` to COM1 (port 0x3F8, no UART set-up needed
 * under QEMU) and to the middle of the VGA text screen (B800:0780, white on blue), then halts
 * forever. The rest of the disk is zeros, except `randomBytes` bytes of noise in the middle so an
 * image conversion has real data to carry.
 *
 *   0  FA          cli
 *   1  FC          cld
 *   2  31 C0       xor ax, ax
 *   4  8E D8       mov ds, ax
 *   6  8E D0       mov ss, ax
 *   8  BC 00 7C    mov sp, 0x7C00
 *  11  B8 00 B8    mov ax, 0xB800
 *  14  8E C0       mov es, ax
 *  16  BE 2B 7C    mov si, 0x7C00 + msg
 *  19  BF 80 07    mov di, 12 * 160          ; row 12, column 0
 *  22  BA F8 03    mov dx, 0x3F8
 *  25  AC          next: lodsb
 *  26  84 C0       test al, al
 *  28  74 0A       jz done
 *  30  EE          out dx, al                ; serial
 *  31  3C 20       cmp al, 0x20
 *  33  72 F6       jb next                   ; CR/LF only go to the serial port
 *  35  B4 1F       mov ah, 0x1F
 *  37  AB          stosw                     ; screen
 *  38  EB F1       jmp next
 *  40  F4          done: hlt
 *  41  EB FD       jmp done
 *  43  msg: marker, 0
 */
export function makeBootableImage(sizeBytes: number, marker: string, opts: { randomBytes?: number } = {}): Buffer {
  const code = [
    0xfa, 0xfc, 0x31, 0xc0, 0x8e, 0xd8, 0x8e, 0xd0, 0xbc, 0x00, 0x7c, 0xb8, 0x00, 0xb8, 0x8e, 0xc0, 0xbe, 0x2b, 0x7c, 0xbf, 0x80, 0x07, 0xba, 0xf8,
    0x03, 0xac, 0x84, 0xc0, 0x74, 0x0a, 0xee, 0x3c, 0x20, 0x72, 0xf6, 0xb4, 0x1f, 0xab, 0xeb, 0xf1, 0xf4, 0xeb, 0xfd,
  ];
  if (code.length !== 43) throw new Error("boot sector code length changed: fix the message offset");
  const msg = Buffer.from(marker, "latin1");
  if (msg.includes(0)) throw new Error("marker must not contain NUL");
  if (code.length + msg.length + 1 > 446) throw new Error("marker too long for the boot sector");
  if (sizeBytes < 512 || sizeBytes % 512 !== 0) throw new Error("sizeBytes must be a positive multiple of 512");

  const img = Buffer.alloc(sizeBytes);
  Buffer.from(code).copy(img, 0);
  msg.copy(img, code.length);
  img[510] = 0x55;
  img[511] = 0xaa;

  const noise = Math.min(opts.randomBytes ?? 1024 * 1024, Math.floor((sizeBytes - 512) / 2));
  if (noise > 0) {
    const at = Math.floor((sizeBytes - noise) / 2 / 512) * 512;
    randomBytes(noise).copy(img, Math.max(512, at));
  }
  return img;
}
