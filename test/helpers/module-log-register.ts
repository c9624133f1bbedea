import { register } from 'node:module';

/** `node --import` this file to log every module loaded (module-log-hooks.ts). */
register(new URL('./module-log-hooks.js', import.meta.url));
