// virtsecretd: the host's secret daemon. The only file that touches process.*: it runs the
// framework's main() with virtsecretd's definition.
import { serviceMain } from '../daemon/run-service.js';
import { secretdService } from './service.js';

void serviceMain(secretdService('0.2.0'), process);
