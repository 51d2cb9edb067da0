// virtnetworkd: the host's network daemon. The only file that touches process.*: it runs the
// framework's main() with virtnetworkd's definition.
import { serviceMain } from '../daemon/run-service.js';
import { networkdService } from './service.js';

void serviceMain(networkdService('0.2.0'), process);
