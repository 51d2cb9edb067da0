// virtqemud entry point (placeholder until the aggregator lands).
process.stdout.write('usage: virtqemud [--root DIR]\n');
