// virtq's side: an RpcClient calling virtq.getState({ name: 'web1' }), with the default per-call
// deadline armed as in real use.
import { isNativeAccelerationEnabled } from 'cbor-x';
import { RpcClient, systemClock } from '../../protocol/index.js';
import { args, need, runClient } from './common.js';

const opts = args();
const client = await RpcClient.connect(need(opts, 'socket'), { clock: systemClock() });
const callArgs = { name: 'web1' };
const call = (): Promise<unknown> => client.call('virtq', 'getState', callArgs);
const first = await call();
if (JSON.stringify(first) !== '{"state":"running","reason":"booted"}') throw new Error(`unexpected reply ${JSON.stringify(first)}`);
await runClient(call, opts, { impl: 'virtq', cborNative: isNativeAccelerationEnabled });
client.close();
