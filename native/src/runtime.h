// What the addon and the native executor share: C code with no N-API in it, compiled into both
// (binding.gyp lists these files once, for both targets). The alloc actions, the program
// runtime the linker binds a JIT'd program's exit/atexit/dlopen to, and the placement of
// reservations inside an address window.
#pragma once

#include <pthread.h>
#include <sys/types.h>
#include <setjmp.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

// LLVM's C wrapper-function ABI result: up to 8 bytes inline, a malloc'd pointer above that,
// and an out-of-band error (Size 0, pointer to a malloc'd NUL-terminated message) otherwise.
struct JitmemWrapperResult {
  union {
    char *ValuePtr;
    char Value[sizeof(char *)];
  } Data;
  size_t Size;
};

extern "C" {
// Alloc actions (action_runtime.cc): each returns an SPSError.
JitmemWrapperResult jitmem_register_eh_frame_action(const char *data, size_t size);
JitmemWrapperResult jitmem_deregister_eh_frame_action(const char *data, size_t size);
JitmemWrapperResult jitmem_trace_action(const char *data, size_t size);
JitmemWrapperResult jitmem_fail_action(const char *data, size_t size);

// The program runtime (program_runtime.cc).
[[noreturn]] void jitmem_program_exit(int status);
int jitmem_program_atexit(void (*fn)());
int jitmem_program_cxa_atexit(void (*fn)(void *), void *arg, void *dso);
void *jitmem_program_dlopen(const char *file, int mode);
int jitmem_program_dlclose(void *handle);
}

namespace jitmem {

// An SPSError result: success for an empty message.
JitmemWrapperResult SpsErrorResult(const std::string &error);

// Walks this thread's stack through the unwinder (which reads every registered EH frame);
// returns the number of frames.
int UnwindProbe();

enum ProgramOutcome { kProgramReturned = 0, kProgramExited = 1, kProgramCrashed = 2 };

struct ProgramRun {
  uint64_t main = 0;
  std::vector<std::string> args;
  std::vector<uint64_t> init;
  std::vector<uint64_t> fini;

  pthread_t thread{};
  std::atomic<bool> onThread{false};
  sigjmp_buf jump;

  // The process that runs the program: a child the program forks ends where the program would.
  pid_t hostPid = 0;

  int status = 0;
  ProgramOutcome outcome = kProgramReturned;
  int signal = 0;
  uint64_t faultAddress = 0;
  uint64_t pc = 0;
  std::string error;
};

// Claims the process's one program slot; false when a program is running already.
bool ProgramBegin(ProgramRun *run);
// Runs the claimed program to its end on a thread of its own (8 MiB stack) and joins it;
// releases the slot. run->error is set when the thread could not start.
void ProgramRunToEnd(ProgramRun *run);
// Gives the slot back when a claimed program could not be started.
void ProgramCancel();
// The run in progress, if any (its thread may be told apart with ProgramOnThread).
ProgramRun *ProgramCurrent();

// mmap inside [lo, hi): the highest free place that fits, or MAP_FAILED with errno set.
void *MapWithin(uint64_t length, int prot, int flags, int fd, uint64_t lo, uint64_t hi);

}  // namespace jitmem
