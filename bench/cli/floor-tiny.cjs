// A floor of the CLI bench (bench/cli/run.mjs): node running a file that prints a constant.
process.stdout.write('0.1.0\n');
