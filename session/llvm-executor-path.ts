/**
 * Where Debian's llvm-22 puts LLVM's executor. A module of its own, importing nothing, so that
 * `jitmem run` can print its help and check its flags without loading the session.
 */
export const DEFAULT_LLVM_EXECUTOR = '/usr/lib/llvm-22/bin/llvm-jitlink-executor';
