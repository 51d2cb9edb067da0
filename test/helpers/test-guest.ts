// Finds the prebuilt test guests (scripts/build-test-guest.sh, scripts/build-idle-guest.mjs) and picks the
// accelerator integration tests boot them with. Resolution mirrors the scripts; everything is read per call.
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** The cache dir both build scripts write to: `$VIRTQ_TEST_GUEST_DIR`, else `$XDG_CACHE_HOME/virtq/test-guest`. */
export function testGuestDir(): string {
  // `||`, not `??`: like the scripts' `${VAR:-default}`, an empty variable counts as unset.
  const cache = process.env['XDG_CACHE_HOME'] || join(homedir(), '.cache');
  return process.env['VIRTQ_TEST_GUEST_DIR'] || join(cache, 'virtq', 'test-guest');
}

function requireFiles(what: string, buildCommand: string, files: string[]): void {
  const missing = files.filter((f) => !existsSync(f));
  if (missing.length > 0) {
    throw new Error(`${what} is not built (missing ${missing.join(', ')}); run \`${buildCommand}\` first`);
  }
}

/** The tiny Linux guest: boot with `-kernel kernel -initrd initrd -append "console=ttyS0 quiet panic=-1"`. */
export function testGuest(): { kernel: string; initrd: string } {
  const dir = testGuestDir();
  const kernel = join(dir, 'vmlinuz');
  const initrd = join(dir, 'initrd.cpio.gz');
  // The manifest is written last, so its absence means an interrupted build.
  requireFiles('the test guest', 'bash scripts/build-test-guest.sh', [kernel, initrd, join(dir, 'manifest.json')]);
  return { kernel, initrd };
}

/** A multiboot image that halts at once: a running guest that costs no host CPU. */
export function idleGuest(): { kernel: string } {
  const kernel = join(testGuestDir(), 'idle.bin');
  requireFiles('the idle guest', 'node scripts/build-idle-guest.mjs', [kernel]);
  return { kernel };
}

/**
 * The accelerator for booting the Linux test guest. KVM is opt-in (`VIRTQ_TEST_KVM=1`): under the nested KVM of
 * the development machines the kernel stalls after decompressing (shared/design/TEST-GUEST.md, pitfall 1).
 */
export function testAccel(): 'tcg' | 'kvm' {
  return process.env['VIRTQ_TEST_KVM'] === '1' ? 'kvm' : 'tcg';
}
