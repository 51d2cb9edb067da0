// The part of the sh launcher heads (virtqemud's, the CLI's; scripts/build.mjs) that picks the
// startup snapshot built by the `node` the launcher is about to exec, and the markers the build
// writes beside a blob so that sh can make that choice without forking (issue 15 target 4,
// session 14). A blob made by another node binary must never be used: Node exits 14 on it.
//
// The blob's name carries the size, mtime and inode of the node binary that built it
// (NAME-SIZE-MTIME-INODE.blob). sh cannot read those without `stat` (a fork and an exec of
// coreutils: ~10 ms of CPU per start, bench/RESULTS.md session 14), so the build also leaves:
//   BLOB.node  a symlink to the real path of that node binary; `[ "$n" -ef BLOB.node ]` (a test
//              builtin: same device and inode) is false once that path holds another file, is
//              dangling, or `$n` is a different binary (another version dir, a Nix store path);
//   BLOB.mtime an empty file with that binary's mtime (`touch -r`, to the nanosecond); neither
//              `-nt` nor `-ot` against it means the same mtime, so an overwrite in place (same
//              inode) or a replacement at the same path (a package upgrade) is seen.
// What this cannot see, and the old key could: another binary put at the same real path with the
// very same mtime to the nanosecond (a copy with `cp -p` of a binary of that exact mtime). The old
// key's hole was the reverse (an overwrite in place keeping size, inode and the mtime's second).
// Both hold only where the build ran (npm pack drops symlinks and resets mtimes): an installed
// package takes the `stat` way, as before, one fork fewer (the PATH walk below is builtins only).
import { execFileSync } from 'node:child_process';
import { realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';

/**
 * The sh text that execs `$n FLAGS --snapshot-blob BLOB -- "$d" "$@"` when a blob of `name`
 * (`$d/NAME-*.blob`) was built by the first `node` on PATH, and falls through otherwise. `$d` is
 * the launcher's directory. Builtins only, except the `stat` fallback when no marker matches.
 */
export function snapshotExec(name, flags) {
  const run = `exec "$n" ${flags ? `${flags} ` : ''}--snapshot-blob "$b" -- "$d" "$@"`;
  // `command -v node` is a subshell (a fork): the walk does what it does for a plain name.
  const walk = 'n=; p=$PATH:; while [ -n "$p" ]; do e=${p%%:*}; p=${p#*:}; [ -f "${e:-.}/node" ] && [ -x "${e:-.}/node" ] && { n=${e:-.}/node; break; }; done';
  // -f first: a missing marker would make both -nt and -ot false, i.e. look equal.
  const marked = `for b in "$d"/${name}-*.blob; do [ -f "$b.mtime" ] && [ "$n" -ef "$b.node" ] && ! [ "$n" -nt "$b.mtime" ] && ! [ "$n" -ot "$b.mtime" ] && ${run}; done`;
  const keyed = `b=$d/${name}-$(stat -L -c %s-%Y-%i -- "$n" 2>/dev/null).blob && [ -f "$b" ] && ${run}`;
  return `${walk}; if [ -n "$n" ]; then ${marked}; ${keyed}; fi`;
}

/** Leaves BLOB.node and BLOB.mtime (see above) for the node binary at `nodePath`, replacing any. */
export function writeBlobMarkers(blob, nodePath) {
  rmSync(`${blob}.node`, { force: true });
  symlinkSync(realpathSync(nodePath), `${blob}.node`);
  writeFileSync(`${blob}.mtime`, '');
  // touch(1), not utimes(): Node passes times as doubles, which lose the nanoseconds.
  execFileSync('touch', ['-r', nodePath, `${blob}.mtime`]);
}
