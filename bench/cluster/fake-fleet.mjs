// The fake fleet of bench/cluster/listing.mjs: VM names and UUIDs derived from (host, index), so
// the etcd claims and the fake hosts' listings agree without sharing state.
export const hostId = (h) => `host${String(h).padStart(3, '0')}`;
export function fakeVm(h, i) {
  const hex = (h * 100_000 + i).toString(16).padStart(12, '0');
  return { name: `vm-${h}-${i}`, uuid: `00000000-0000-4000-8000-${hex}` };
}
