import { appendFileSync } from 'node:fs';

/**
 * Module hooks (module.register) that append every module URL Node loads to the file named by
 * JITMEM_MODULE_LOG: what a command loads, read from Node itself.
 */

type Load = (
  url: string,
  context: unknown,
  next: (url: string, context: unknown) => Promise<unknown>,
) => Promise<unknown>;

export const load: Load = async (url, context, next) => {
  const file = process.env.JITMEM_MODULE_LOG;
  if (file) appendFileSync(file, url + '\n');
  return next(url, context);
};
