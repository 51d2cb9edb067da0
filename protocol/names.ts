// The VM name rule as a bare pattern, for modules that must not load the schema library
// (protocol/uri.ts, which the CLI's fast path bundles: docs/decisions/0028-cli-startup-snapshot.md).

/** VM names: 1–64 of letters, digits, `.`, `_`, `-`, `+`, not starting with `.` or `-`. */
export const NAME_PATTERN = '^[A-Za-z0-9_+][A-Za-z0-9._+-]{0,63}$';
