// virtqemud: the host's aggregator daemon. The only file that touches process.*: it runs the
// framework's main() with virtqemud's definition (a JSON line on stdout once serving; SIGTERM
// and SIGINT stop it cleanly while shims and VMs keep running).
import { serviceMain } from '../daemon/run-service.js';
import { virtqemudService } from './compose.js';

void serviceMain(virtqemudService('0.1.0', new URL(import.meta.url)), process);
