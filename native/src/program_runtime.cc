// Running a JIT-linked program the way a process runs its own main: on a thread with a normal
// 8 MiB stack, with the program's initialisers before main and its atexit handlers and
// finalisers after it, where exit() on that thread ends the program (not the process hosting
// it) and a fault in the program's code is reported with its address instead of killing the
// host. Shared by the addon (the in-process mapper) and the native executor (runtime.h).
//
// exit, atexit and __cxa_atexit of the program are bound by the linker to the functions here:
// exit() called on the program's thread jumps back to the runner with its status, and handlers
// are kept in a list of the run's own, so that they run when the program ends and nothing of it
// is left in the host's libc afterwards.

#include <dlfcn.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <iterator>
#include <mutex>

#include "runtime.h"

extern char **environ;

namespace jitmem {
namespace {

constexpr size_t kProgramStack = 8u << 20;
constexpr size_t kSignalStack = 64u << 10;

struct ExitHandler {
  bool withArg;
  void *fn;
  void *arg;
};

std::mutex gHandlersMutex;
std::vector<ExitHandler> gHandlers;
// Libraries the program dlopen()ed and has not closed, one entry per open: closed after its
// finalisers, so that the next program loads fresh copies bound to its own symbols.
std::vector<void *> gOpened;
// The run in progress (one at a time per process): the fault handler and exit() find it here.
std::atomic<ProgramRun *> gRun{nullptr};
std::atomic<bool> gBusy{false};

struct sigaction gPrevious[NSIG];
std::once_flag gInstallOnce;

bool OnProgramThread(ProgramRun *run) { return run != nullptr && run->onThread.load() && pthread_equal(pthread_self(), run->thread); }

// Async-signal-safe: "jitmem: SIGSEGV at address 0x... outside the program's thread[; exiting with 139]".
void SayFault(int sig, siginfo_t *info, bool exiting) {
  char buf[160];
  size_t n = 0;
  auto put = [&](const char *s) {
    while (*s && n < sizeof buf) buf[n++] = *s++;
  };
  auto putHex = [&](uint64_t v) {
    put("0x");
    char digits[16];
    int k = 0;
    do {
      digits[k++] = "0123456789abcdef"[v & 15];
      v >>= 4;
    } while (v && k < 16);
    while (k > 0 && n < sizeof buf) buf[n++] = digits[--k];
  };
  auto putDec = [&](int v) {
    char digits[12];
    int k = 0;
    do {
      digits[k++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v && k < 12);
    while (k > 0 && n < sizeof buf) buf[n++] = digits[--k];
  };
  put("jitmem: ");
  put(sig == SIGSEGV ? "SIGSEGV" : sig == SIGBUS ? "SIGBUS" : sig == SIGILL ? "SIGILL" : sig == SIGFPE ? "SIGFPE" : "a signal");
  put(" at address ");
  putHex(reinterpret_cast<uintptr_t>(info->si_addr));
  put(" outside the program's thread");
  if (exiting) {
    put("; exiting with ");
    putDec(128 + sig);
  }
  put("\n");
  ssize_t ignored = write(2, buf, n);
  (void)ignored;
}

void OnFault(int sig, siginfo_t *info, void *context) {
  ProgramRun *run = gRun.load();
  if (OnProgramThread(run)) {
    run->outcome = kProgramCrashed;
    run->signal = sig;
    run->faultAddress = reinterpret_cast<uintptr_t>(info->si_addr);
#if defined(__x86_64__)
    run->pc = static_cast<uint64_t>(static_cast<ucontext_t *>(context)->uc_mcontext.gregs[REG_RIP]);
#elif defined(__aarch64__)
    run->pc = static_cast<ucontext_t *>(context)->uc_mcontext.pc;
#endif
    siglongjmp(run->jump, 1);
  }
  // Not the program's fault: whoever handled it before us does, or the default action.
  const struct sigaction &prev = gPrevious[sig];
  if (prev.sa_flags & SA_SIGINFO) {
    // The host's own handler (Node's, in the in-process mapper) decides; it ends the process
    // with the signal unless the fault is one it knows. Say what happened first.
    if (run != nullptr) SayFault(sig, info, false);
    prev.sa_sigaction(sig, info, context);
  } else if (prev.sa_handler == SIG_DFL) {
    // A fault on another thread (one the program started, or the host's own) ends the process,
    // as natively; first say what happened, then exit 128 + N, as `jitmem run` promises.
    SayFault(sig, info, true);
    _exit(128 + sig);
  } else if (prev.sa_handler != SIG_IGN) {
    prev.sa_handler(sig);
  }
}

// abort() while a program runs ends the process as natively (in process, the controller with
// it: they share it); it says so first. The handler returns, and abort() raises SIGABRT again
// with the default action: no jump out of abort, whose lock would stay held.
void OnAbort(int sig, siginfo_t *info, void *context) {
  ProgramRun *run = gRun.load();
  if (run != nullptr) {
    static const char onThread[] = "jitmem: the program called abort() (SIGABRT); the process ends with 134\n";
    static const char offThread[] = "jitmem: abort() (SIGABRT) outside the program's thread; the process ends with 134\n";
    const char *m = OnProgramThread(run) ? onThread : offThread;
    ssize_t ignored = write(2, m, OnProgramThread(run) ? sizeof onThread - 1 : sizeof offThread - 1);
    (void)ignored;
  }
  const struct sigaction &prev = gPrevious[sig];
  if (prev.sa_flags & SA_SIGINFO) prev.sa_sigaction(sig, info, context);
  else if (prev.sa_handler != SIG_DFL && prev.sa_handler != SIG_IGN) prev.sa_handler(sig);
}

void InstallFaultHandlers() {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = OnFault;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGSEGV, SIGBUS, SIGILL, SIGFPE}) sigaction(sig, &sa, &gPrevious[sig]);
  sa.sa_sigaction = OnAbort;
  sigaction(SIGABRT, &sa, &gPrevious[SIGABRT]);
}

using InitFn = void (*)(int, char **, char **);
using MainFn = int (*)(int, char **, char **);

// glibc's exit() first runs the destructors of the calling thread's C++ thread_locals
// (__call_tls_dtors), then the atexit handlers and static destructors. The program's handlers
// are kept here, not in libc's list, so the runner does the same: a thread_local on the
// program's main thread is destroyed before the statics it may use, as natively, and not at
// the thread's end, after them. The function is GLIBC_PRIVATE, hence looked up, not linked:
// without it (another libc) thread_locals are destroyed when the thread ends.
void CallThreadLocalDestructors() {
  using CallTlsDtors = void (*)();
  static const CallTlsDtors call = reinterpret_cast<CallTlsDtors>(dlsym(RTLD_DEFAULT, "__call_tls_dtors"));
  if (call != nullptr) call();
}

// Runs the exit handlers registered so far, newest first; handlers may register more.
void RunExitHandlers() {
  for (;;) {
    ExitHandler h;
    {
      std::lock_guard<std::mutex> lock(gHandlersMutex);
      if (gHandlers.empty()) return;
      h = gHandlers.back();
      gHandlers.pop_back();
    }
    if (h.withArg)
      reinterpret_cast<void (*)(void *)>(h.fn)(h.arg);
    else
      reinterpret_cast<void (*)()>(h.fn)();
  }
}

void *ProgramThread(void *arg) {
  ProgramRun *run = static_cast<ProgramRun *>(arg);
  stack_t altStack;
  memset(&altStack, 0, sizeof altStack);
  altStack.ss_sp = malloc(kSignalStack);
  altStack.ss_size = kSignalStack;
  if (altStack.ss_sp) sigaltstack(&altStack, nullptr);

  std::vector<char *> argv;
  for (auto &a : run->args) argv.push_back(&a[0]);
  argv.push_back(nullptr);
  int argc = static_cast<int>(run->args.size());

  run->thread = pthread_self();
  run->onThread.store(true);
  // Phase 1: initialisers and main. exit() and faults come back here.
  if (sigsetjmp(run->jump, 1) == 0) {
    for (uint64_t fn : run->init) reinterpret_cast<InitFn>(static_cast<uintptr_t>(fn))(argc, argv.data(), environ);
    run->status = reinterpret_cast<MainFn>(static_cast<uintptr_t>(run->main))(argc, argv.data(), environ);
    run->outcome = kProgramReturned;
  }
  // Phase 2, as exit() does it: atexit handlers, then the finalisers. An exit() from a handler
  // ends the cleanup with the first status; a fault ends it as a crash.
  if (run->outcome != kProgramCrashed) {
    // volatile: read again after siglongjmp has come back to this frame.
    volatile int status = run->status;
    volatile ProgramOutcome outcome = run->outcome;
    if (sigsetjmp(run->jump, 1) == 0) {
      CallThreadLocalDestructors();
      RunExitHandlers();
      for (uint64_t fn : run->fini) reinterpret_cast<void (*)()>(static_cast<uintptr_t>(fn))();
    }
    if (run->outcome != kProgramCrashed) {
      run->status = status;
      run->outcome = outcome;
    }
  }
  run->onThread.store(false);
  fflush(nullptr);
  if (getpid() != run->hostPid) {
    // A child the program forked (fork() copied this thread alone): its main has returned or
    // called exit(), its handlers have run; it ends as a process, with the program's status.
    if (run->outcome == kProgramCrashed) {
      signal(run->signal, SIG_DFL);
      raise(run->signal);
    }
    _exit(run->status & 0xff);
  }
  std::vector<void *> opened;
  {
    std::lock_guard<std::mutex> lock(gHandlersMutex);
    gHandlers.clear();
    opened.swap(gOpened);
  }
  // Newest first, as the program would unwind them; a library's destructors run now.
  for (auto it = opened.rbegin(); it != opened.rend(); ++it) dlclose(*it);
  if (altStack.ss_sp) {
    stack_t off;
    memset(&off, 0, sizeof off);
    off.ss_flags = SS_DISABLE;
    sigaltstack(&off, nullptr);
    free(altStack.ss_sp);
  }
  return nullptr;
}

}  // namespace

bool ProgramBegin(ProgramRun *run) {
  bool expected = false;
  if (!gBusy.compare_exchange_strong(expected, true)) return false;
  std::call_once(gInstallOnce, InstallFaultHandlers);
  {
    std::lock_guard<std::mutex> lock(gHandlersMutex);
    gHandlers.clear();
  }
  run->hostPid = getpid();
  gRun.store(run);
  return true;
}

void ProgramRunToEnd(ProgramRun *run) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, kProgramStack);
  pthread_t thread;
  int err = pthread_create(&thread, &attr, ProgramThread, run);
  pthread_attr_destroy(&attr);
  if (err != 0) {
    run->error = std::string("pthread_create failed: ") + strerror(err);
  } else {
    pthread_join(thread, nullptr);
  }
  gRun.store(nullptr);
  gBusy.store(false);
}

void ProgramCancel() {
  gRun.store(nullptr);
  gBusy.store(false);
}

ProgramRun *ProgramCurrent() { return gRun.load(); }

// ---- Placing reservations --------------------------------------------------------------------
// Code built as a position-dependent or position-independent executable reaches data outside
// itself with 32-bit PC-relative or absolute addresses: the linker can only honour them when
// the program's memory lies within 2 GiB of that data (or in the low 2 GiB). MapWithin maps a
// reservation inside a window of addresses: the highest free gap of /proc/self/maps that fits,
// taken with MAP_FIXED_NOREPLACE so that nothing mapped meanwhile is ever clobbered.

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

namespace {

// The process's mappings, sorted, read with plain read(2) (no iostreams: nothing here throws).
std::vector<std::pair<uint64_t, uint64_t>> Mappings() {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  FILE *f = fopen("/proc/self/maps", "re");
  if (!f) return out;
  char line[4096];
  while (fgets(line, sizeof line, f)) {
    unsigned long long start = 0, end = 0;
    if (sscanf(line, "%llx-%llx", &start, &end) == 2 && end > start) out.emplace_back(start, end);
    // A line longer than the buffer: skip its rest.
    while (strchr(line, '\n') == nullptr && fgets(line, sizeof line, f)) {
    }
  }
  fclose(f);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

void *MapWithin(uint64_t length, int prot, int flags, int fd, uint64_t lo, uint64_t hi) {
  constexpr uint64_t kAlign = 1u << 16;
  constexpr uint64_t kUserTop = 1ull << 47;
  if (lo < kAlign) lo = kAlign;  // never page 0 and its neighbours
  std::vector<std::pair<uint64_t, uint64_t>> gaps;
  uint64_t previousEnd = 0;
  for (auto &m : Mappings()) {
    if (m.first > previousEnd) gaps.emplace_back(previousEnd, m.first);
    previousEnd = std::max(previousEnd, m.second);
  }
  if (kUserTop > previousEnd) gaps.emplace_back(previousEnd, kUserTop);
  for (size_t i = gaps.size(); i-- > 0;) {
    uint64_t from = std::max(gaps[i].first, lo);
    uint64_t to = std::min(gaps[i].second, hi);
    if (to <= from || to - from < length) continue;
    uint64_t at = (to - length) & ~(kAlign - 1);
    if (at < from) continue;
    void *p = mmap(reinterpret_cast<void *>(at), length, prot, flags | MAP_FIXED_NOREPLACE, fd, 0);
    if (p != MAP_FAILED && reinterpret_cast<uint64_t>(p) != at) {
      munmap(p, length);  // an old kernel took the flag for a hint
      continue;
    }
    if (p != MAP_FAILED) return p;
    if (errno != EEXIST) return MAP_FAILED;  // mapped meanwhile: try the next gap
  }
  errno = ENOMEM;
  return MAP_FAILED;
}

}  // namespace jitmem

using jitmem::ProgramRun;

extern "C" {

[[noreturn]] void jitmem_program_exit(int status) {
  ProgramRun *run = jitmem::gRun.load();
  if (jitmem::OnProgramThread(run)) {
    run->status = status;
    run->outcome = jitmem::kProgramExited;
    siglongjmp(run->jump, 1);
  }
  // Another thread of the program: exit() ends the process, as it would natively, after the
  // program's own atexit handlers and finalisers (kept here, not in libc's list).
  if (run != nullptr) {
    jitmem::CallThreadLocalDestructors();
    jitmem::RunExitHandlers();
    for (uint64_t fn : run->fini) reinterpret_cast<void (*)()>(static_cast<uintptr_t>(fn))();
  }
  fflush(nullptr);
  exit(status);
}

int jitmem_program_atexit(void (*fn)()) {
  std::lock_guard<std::mutex> lock(jitmem::gHandlersMutex);
  jitmem::gHandlers.push_back({false, reinterpret_cast<void *>(fn), nullptr});
  return 0;
}

int jitmem_program_cxa_atexit(void (*fn)(void *), void *arg, void * /*dso*/) {
  std::lock_guard<std::mutex> lock(jitmem::gHandlersMutex);
  jitmem::gHandlers.push_back({true, reinterpret_cast<void *>(fn), arg});
  return 0;
}

void *jitmem_program_dlopen(const char *file, int mode) {
  void *h = dlopen(file, mode);
  if (h != nullptr && file != nullptr) {
    std::lock_guard<std::mutex> lock(jitmem::gHandlersMutex);
    jitmem::gOpened.push_back(h);
  }
  return h;
}

int jitmem_program_dlclose(void *handle) {
  {
    std::lock_guard<std::mutex> lock(jitmem::gHandlersMutex);
    auto &opened = jitmem::gOpened;
    for (auto it = opened.rbegin(); it != opened.rend(); ++it) {
      if (*it == handle) {
        opened.erase(std::next(it).base());
        break;
      }
    }
  }
  return dlclose(handle);
}

}  // extern "C"
