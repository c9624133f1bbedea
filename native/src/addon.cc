// jitmem's native addon: OS primitives, plus the C ABI shims that must be C and nothing else.
//
// What is here: syscall wrappers (memory.cc, mapped_file.cc, shm.cc, process.cc, spawn.cc,
// dylib.cc), a fixed piece of work timed (machine_speed.cc) and the places where C code has to
// call or be called with a C ABI (calls.cc: direct calls, LLVM's wrapper-function ABI and run-as
// calls; actions.cc: alloc actions as real wrapper functions; dispatch.cc: JIT dispatch from
// JIT'd code back to the controller). Everything else, including every argument check that reads
// well in TypeScript, lives in native/index.ts. This code only guards against values that would
// make a wrapper itself misbehave (wrong JS types), and turns every failing syscall into an Error
// carrying the errno name as `code` and the syscall as `syscall`, the way Node's own errors do.

#include "jitmem.h"

// Defined in run_program.cc.
void RegisterRunProgram(Napi::Env env, Napi::Object exports);

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  RegisterRunProgram(env, exports);  // run_program.cc
  jitmem::RegisterMemory(env, exports);
  jitmem::RegisterMappedFile(env, exports);
  jitmem::RegisterShm(env, exports);
  jitmem::RegisterCalls(env, exports);
  jitmem::RegisterActions(env, exports);
  jitmem::RegisterDispatch(env, exports);
  jitmem::RegisterProcess(env, exports);
  jitmem::RegisterDylib(env, exports);
  jitmem::RegisterSpawn(env, exports);
  jitmem::RegisterMachineSpeed(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(jitmem_native, Init)
