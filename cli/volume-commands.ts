// `vol-upload` and `vol-download` as they run: the file, the stream, progress and Ctrl-C. Their own
// module, without the catalogue or commander, so the full CLI (cli/storage-commands.ts) and the lean
// entry for these two commands (cli/transfer-main.ts, decision 0012) run the same code.
import { receiveDownload, sendUpload } from '../client/volume-transfer.js';
import type { RunContext } from './command.js';
import type { Input } from './derive.js';
import { progressReporter } from './progress.js';
import { formatSize } from './size-format.js';

/** `vol-upload POOL NAME FILE`. */
export async function runUpload(ctx: RunContext, input: Input): Promise<void> {
  const [pool, name, file] = ['pool', 'name', 'file'].map((k) => String(input.args[k])) as [string, string, string];
  const length = await ctx.io.files.size(file);
  const conn = await ctx.connectService();
  const stream = await conn.openStream('uploadVolume', { pool, name, length });
  const bar = progressReporter(ctx, `Uploading ${file}`);
  const controller = new AbortController();
  const interrupt = ctx.io.onInterrupt(() => controller.abort());
  try {
    // The file is read straight into the frames that send it (no copy in this process).
    await sendUpload(stream as never, (bufferFor) => ctx.io.files.read(file, { lent: true, bufferFor }), length, `upload of ${pool}/${name}`, { signal: controller.signal, onProgress: (doneBytes, totalBytes) => bar.report({ doneBytes, totalBytes }) });
  } finally {
    interrupt.dispose();
    bar.done();
  }
  if (ctx.json) ctx.printJson({ pool, name, bytes: length }, true);
  else ctx.print(`Vol ${name} uploaded from ${file} (${formatSize(length)})\n`);
}

/** `vol-download POOL NAME FILE`. */
export async function runDownload(ctx: RunContext, input: Input): Promise<void> {
  const [pool, name, file] = ['pool', 'name', 'file'].map((k) => String(input.args[k])) as [string, string, string];
  const conn = await ctx.connectService();
  const stream = await conn.openStream('downloadVolume', { pool, name });
  const out = await ctx.io.files.create(file);
  const bar = progressReporter(ctx, `Downloading ${name}`);
  const controller = new AbortController();
  const interrupt = ctx.io.onInterrupt(() => controller.abort());
  let bytes: number;
  try {
    bytes = await receiveDownload(stream as never, (chunk) => out.write(chunk), `download of ${pool}/${name}`, { signal: controller.signal, onProgress: (doneBytes, totalBytes) => bar.report({ doneBytes, totalBytes }) });
    await out.commit();
  } catch (err) {
    await out.abort();
    throw err;
  } finally {
    interrupt.dispose();
    bar.done();
  }
  if (ctx.json) ctx.printJson({ pool, name, bytes }, true);
  else ctx.print(`Vol ${name} downloaded to ${file} (${formatSize(bytes)})\n`);
}
