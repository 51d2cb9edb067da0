#!/usr/bin/env node
// Writes idle.bin, a 36-byte multiboot (v1) kernel whose only code is `cli; hlt` in a loop: booted with
// `-kernel`, the guest parks its vCPU and costs no host CPU (without a kernel SeaBIOS reboots every 60 s).
// It is a flat binary: QEMU's multiboot loader takes load addresses from the header (the "a.out kludge", flag 16).
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

const MAGIC = 0x1badb002;
const FLAG_ADDRESSES = 1 << 16; // header carries load/entry addresses, so no ELF is needed
const LOAD = 0x100000; // 1 MiB: the lowest address above the BIOS hole, where multiboot kernels conventionally load
const HEADER_BYTES = 32;
// cli; 1: hlt; jmp 1b — NMIs and SMIs can still wake a halted CPU, so loop back into hlt.
const CODE = [0xfa, 0xf4, 0xeb, 0xfd];

function idleImage() {
  const size = HEADER_BYTES + CODE.length;
  const image = Buffer.alloc(size);
  const fields = [
    MAGIC,
    FLAG_ADDRESSES,
    (-(MAGIC + FLAG_ADDRESSES)) >>> 0, // checksum: magic + flags + checksum == 0 (mod 2^32)
    LOAD, // header_addr: the header sits at the start of the image
    LOAD, // load_addr
    LOAD + size, // load_end_addr
    0, // bss_end_addr: no bss
    LOAD + HEADER_BYTES, // entry_addr
  ];
  fields.forEach((value, i) => image.writeUInt32LE(value, i * 4));
  Buffer.from(CODE).copy(image, HEADER_BYTES);
  return image;
}

function defaultDir() {
  const cache = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return process.env.VIRTQ_TEST_GUEST_DIR || join(cache, 'virtq', 'test-guest');
}

const outDir = process.argv[2] || defaultDir();
mkdirSync(outDir, { recursive: true });
const target = join(outDir, 'idle.bin');
writeFileSync(`${target}.tmp`, idleImage());
renameSync(`${target}.tmp`, target);
console.log(`built: ${target}`);
