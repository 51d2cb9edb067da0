// virtnodedevd's handlers: the `nodedev` program over the node device driver. Everything is
// read-only, so the read-only socket serves it all; events go to the connections that asked.
import type { Handlers, NodedevProgram, ServerClient } from '../protocol/index.js';
import type { NodeDevices } from '../drivers/nodedev/node-devices.js';

/** The subscription key a connection holds once it called subscribeEvents. */
export const DEVICE_EVENTS = 'nodedev:device';

/** True when `client` wants device events. */
export const wantsDeviceEvents = (client: ServerClient): boolean => client.subscriptions.has(DEVICE_EVENTS);

/** The nodedev program's handlers. */
export function nodedevHandlers(devices: NodeDevices): Handlers<NodedevProgram> {
  return {
    listDevices: async ({ cap }) => ({ devices: await devices.list(cap === undefined ? {} : { cap }) }),
    getDevice: ({ name }) => devices.get(name),
    subscribeEvents: (_args, ctx) => {
      ctx.client.subscriptions.add(DEVICE_EVENTS);
      return {};
    },
  };
}
