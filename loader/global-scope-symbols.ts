/**
 * What lookups found in an executor's global scope, kept for the next program: a controller that
 * links program after program into one executor (a warm controller, a long-running JIT) asks
 * for the same names each time, and out of process each ask is a round trip. ORC keeps the
 * process symbols its search generator found the same way, as absolute symbols of their
 * JITDylib.
 *
 * Why a kept answer stays right: answers are kept only while the scope holds nothing that is
 * ever closed again (no program running, which may open libraries; no program's export
 * library; no library opened for a program's thread-locals). The scope then holds the
 * executor's own libraries and the --preload ones, which stay open for the session, and a
 * library opened later comes after them in the search order, so it cannot change an address
 * found in them. A name not found is kept as such until the next library opens, which may
 * define it. One per executor process (this process, for the in-process targets): every target
 * over it shares it, as they share the scope.
 */
export class GlobalScopeSymbols {
  /** Libraries opened for good (--preload), by the path they were opened with: nothing closes them. */
  private readonly permanent = new Set<string>();
  private readonly found = new Map<string, number>();
  private readonly notFound = new Set<string>();
  /** Programs running, and libraries open (or on their way) that will be closed again. */
  private closable = 0;
  /** Counts every library and program that entered the scope: an answer to an ask sent before one is not kept. */
  private entered = 0;

  /** The address of each name (0: not found): kept answers, and one `resolve` of the other names. */
  async lookup(
    names: readonly string[],
    resolve: (names: readonly string[]) => Promise<readonly number[]>,
  ): Promise<number[]> {
    const missing = names.filter((name) => !this.found.has(name) && !this.notFound.has(name));
    const asked = new Map<string, number>();
    if (missing.length > 0) {
      const entered = this.entered;
      const addresses = await resolve(missing);
      const keep = this.closable === 0 && this.entered === entered;
      missing.forEach((name, i) => {
        const address = addresses[i] ?? 0;
        if (!keep) asked.set(name, address);
        else if (address !== 0) this.found.set(name, address);
        else this.notFound.add(name);
      });
    }
    return names.map((name) => this.found.get(name) ?? asked.get(name) ?? 0);
  }

  /**
   * Opens a library for good (a --preload) unless it already is: nothing closes it, so opening
   * it again would only count a reference (and out of process cost a round trip). Names not
   * found so far are asked again: it may define them.
   */
  async openForGood(path: string, open: () => unknown): Promise<void> {
    if (this.permanent.has(path)) return;
    this.entering();
    await open();
    this.permanent.add(path);
  }

  /**
   * Opens a library that will be closed again (an export library, a thread-locals library):
   * no answer is kept from now until closed() says it is gone (or it fails to open).
   */
  async openClosable<T>(open: () => T | Promise<T>): Promise<T> {
    this.closable++;
    this.entering();
    try {
      return await open();
    } catch (err) {
      this.closable--;
      throw err;
    }
  }

  /** Something enters the scope: an answer asked before is not kept, and a name not found may be found now. */
  private entering(): void {
    this.entered++;
    this.notFound.clear();
  }

  /** A library openClosable() opened was closed, or its symbols are ignored from now on. */
  closed(): void {
    this.closable--;
  }

  /** Runs a program: it may open libraries of its own, so no answer is kept while it runs. */
  async during<T>(run: () => Promise<T>): Promise<T> {
    this.closable++;
    this.entering();
    try {
      return await run();
    } finally {
      this.closable--;
    }
  }
}

const sessionScopes = new WeakMap<object, GlobalScopeSymbols>();

/** The scope of the executor behind `session` (this process's: `process`), shared by every target over it. */
export function globalScopeOf(session: object): GlobalScopeSymbols {
  let scope = sessionScopes.get(session);
  if (!scope) sessionScopes.set(session, (scope = new GlobalScopeSymbols()));
  return scope;
}
