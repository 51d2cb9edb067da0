// virtq entry point (placeholder until the CLI lands).
process.stdout.write('usage: virtq [-c URI] COMMAND\n');
