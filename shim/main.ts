// virtq-shim entry point (placeholder until the shim lands).
process.stdout.write('usage: virtq-shim --root DIR --definition FILE | --attach NAME --root DIR\n');
