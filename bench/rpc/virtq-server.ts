// virtq's side: an RpcServer with role 'shim' serving the real `virtq` program, with a stub
// getState handler. Every call goes through frame decoding, message checks, the access check,
// the compiled TypeBox argument validator, the handler and the reply path.
import { RpcServer, silentLogger, systemClock, virtqProgram } from '../../protocol/index.js';
import { args, need, serveControl } from './common.js';

const path = need(args(), 'socket');
const server = new RpcServer({ daemon: 'virtq-shim', version: '0.1.0', role: 'shim', clock: systemClock(), log: silentLogger() });
server.register({ program: virtqProgram, handlers: { getState: () => ({ state: 'running' as const, reason: 'booted' }) } });
await server.listen(path, 'rw', 0o600);
serveControl();
