#!/usr/bin/env node

// `node dist/harness/cli.js`: the same command as package.json's bin, cli.cjs (see cli.cts),
// through Node's ES module loader.
import './cli.cjs';
