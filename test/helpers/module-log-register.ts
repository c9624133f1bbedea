import { appendFileSync } from 'node:fs';
import Module, { register } from 'node:module';
import { pathToFileURL } from 'node:url';

/**
 * `node --import` this file to log every module loaded: ES modules through module hooks
 * (module-log-hooks.ts), and CommonJS files through require (Node 20's hooks do not see
 * require: the CLI's entry, cli.cts, and its bundle loader are CommonJS).
 */
register(new URL('./module-log-hooks.js', import.meta.url));

interface ModuleLoader {
  _load(request: string, parent: unknown, isMain: boolean): unknown;
  _resolveFilename(request: string, parent: unknown, isMain: boolean): string;
}
const loader = Module as unknown as ModuleLoader;
const load = loader._load.bind(loader);
loader._load = (request, parent, isMain) => {
  const file = process.env.JITMEM_MODULE_LOG;
  if (file && !Module.isBuiltin(request))
    appendFileSync(file, pathToFileURL(loader._resolveFilename(request, parent, isMain)).href + '\n');
  return load(request, parent, isMain);
};
