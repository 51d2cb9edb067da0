// The `secret` program, served by virtsecretd: secrets (a passphrase, a key) with metadata
// anyone may read and a value only read-write clients may have. Values are bytes on the wire and
// never appear in a reply other than getValue's and useValue's. Append only.
import { Type, type Static } from '@sinclair/typebox';
import { DomainName } from './definition.js';
import { defineProgram, proc } from './catalogue.js';
import { Empty } from './types.js';

const secretd = ['secret'] as const;

/** A secret's UUID (any case; answers use lower case). */
export const SecretUuid = Type.String({ pattern: '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$', description: 'secret UUID' });

/** What a secret is for: a volume's passphrase (`pool/volume` or a path), or free text. */
export const SecretUsage = Type.Union([
  Type.Object({ type: Type.Literal('volume'), volume: Type.String({ minLength: 1, maxLength: 4096, pattern: '^[^\\u0000]+$' }) }, { additionalProperties: false }),
  Type.Object({ type: Type.Literal('text'), text: Type.String({ minLength: 1, maxLength: 1024, pattern: '^[^\\u0000]+$' }) }, { additionalProperties: false }),
]);

/** What secretDefine takes. */
export const SecretDefinition = Type.Object({
  uuid: Type.Optional(SecretUuid),
  usage: Type.Optional(SecretUsage),
  description: Type.Optional(Type.String({ maxLength: 1024, pattern: '^[^\\u0000]*$' })),
  /** The value may not be read back through getValue. */
  private: Type.Optional(Type.Boolean()),
  /** Kept in virtsecretd's memory only; gone when it stops. */
  ephemeral: Type.Optional(Type.Boolean()),
}, { additionalProperties: false });

/** A secret as listed: its metadata, never its value. */
export const SecretRow = Type.Object({
  uuid: Type.String(),
  usage: Type.Optional(SecretUsage),
  description: Type.Optional(Type.String()),
  private: Type.Boolean(),
  ephemeral: Type.Boolean(),
  hasValue: Type.Boolean(),
});

/** A value: 1 byte to 64 KiB. */
const Value = Type.Uint8Array({ minByteLength: 1, maxByteLength: 65536 });
const Ref = Type.Object({ uuid: SecretUuid }, { additionalProperties: false });

export const secretProgram = defineProgram('secret', 'Secrets: passphrases and keys, encrypted at rest, values withheld from read-only clients.', {
  listSecrets: proc({ args: Empty, ret: Type.Object({ secrets: Type.Array(SecretRow) }), servers: secretd, readonly: true, since: '0.2', cli: 'secret-list',
    description: 'Every secret\'s metadata (never a value).' }),
  getSecret: proc({ args: Ref, ret: SecretRow, servers: secretd, readonly: true, since: '0.2', cli: 'secret-info',
    description: 'One secret\'s metadata.' }),
  lookupSecretByUsage: proc({ args: Type.Object({ usage: SecretUsage }, { additionalProperties: false }), ret: SecretRow, servers: secretd, readonly: true, since: '0.2',
    description: 'The secret with this usage (a volume\'s passphrase, say).' }),
  defineSecret: proc({ args: Type.Object({ definition: SecretDefinition }, { additionalProperties: false }), ret: SecretRow, servers: secretd, readonly: false, since: '0.2', cli: 'secret-define',
    description: 'Defines a secret, or replaces the metadata of one with the same UUID (its value is kept).' }),
  undefineSecret: proc({ args: Ref, ret: Empty, servers: secretd, readonly: false, since: '0.2', cli: 'secret-undefine',
    description: 'Removes a secret and its value.' }),
  setValue: proc({ args: Type.Object({ uuid: SecretUuid, value: Value }, { additionalProperties: false }), ret: Empty, servers: secretd, readonly: false, since: '0.2', cli: 'secret-set-value',
    description: 'Sets a secret\'s value (1 byte to 64 KiB), encrypted at rest unless the secret is ephemeral.' }),
  getValue: proc({ args: Ref, ret: Type.Object({ value: Type.Uint8Array() }), servers: secretd, readonly: false, revealsSecret: true, since: '0.2', cli: 'secret-get-value',
    description: 'A secret\'s value; refused (PERMISSION_DENIED) for private secrets, and on the read-only socket.' }),
  useValue: proc({ args: Type.Object({ uuid: SecretUuid, consumer: Type.Object({ vm: Type.Optional(DomainName), purpose: Type.String({ minLength: 1, maxLength: 256, pattern: '^[^\\u0000]+$' }) }, { additionalProperties: false }) }, { additionalProperties: false }),
    ret: Type.Object({ value: Type.Uint8Array() }), servers: secretd, readonly: false, revealsSecret: true, since: '0.2',
    description: 'A secret\'s value for a consumer that hands it on without showing it (a shim to QEMU, virtstoraged to qemu-img); allowed for private secrets, logged with the consumer (never the value).' }),
}, {});
export type SecretProgram = typeof secretProgram;

// Each schema above is also the name of the type it validates.
export type SecretUsage = Static<typeof SecretUsage>;
export type SecretDefinition = Static<typeof SecretDefinition>;
export type SecretRow = Static<typeof SecretRow>;
