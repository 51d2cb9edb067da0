// virtstoraged: the host's storage daemon. The only file that touches process.*: it runs the
// framework's main() with virtstoraged's definition.
import { serviceMain } from '../daemon/run-service.js';
import { storagedService } from './service.js';

void serviceMain(storagedService('0.2.0'), process);
