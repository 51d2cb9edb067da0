// virtnodedevd: the host-device daemon. The only file that touches process.*: it runs the
// framework's main() with virtnodedevd's definition.
import { serviceMain } from '../daemon/run-service.js';
import { nodedevdService } from './service.js';

void serviceMain(nodedevdService('0.2.0'), process);
