// Byte sizes as the CLI prints them (`1.00 GiB`): its own module, without commander, so the lean
// entry for vol-upload/vol-download (cli/transfer-main.ts) prints them with the same function.

/** `1073741824` -> `1.00 GiB`. */
export function formatSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return i === 0 ? `${v} B` : `${v.toFixed(2)} ${units[i] ?? ''}`;
}
