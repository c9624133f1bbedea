// Running a JIT-linked program the way a process runs its own main: on a thread with a normal
// 8 MiB stack, with the program's initialisers before main and its atexit handlers and
// finalisers after it, where exit() ends the program (not the process hosting it) and a fault
// in the program's code is reported with its address instead of killing the host.
//
// exit, atexit and __cxa_atexit of the program are bound by the linker to the functions here
// (their addresses come from ProgramRuntime): exit() called on the program's thread jumps back
// to the runner with its status, and handlers are kept in a list of the run's own, so that
// they run when the program ends and nothing of it is left in the host's libc afterwards.

#include "jitmem.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <sstream>
#include <mutex>
#include <string>
#include <vector>

extern char **environ;

namespace {

using jitmem::ThrowCode;
using jitmem::ThrowType;

constexpr size_t kProgramStack = 8u << 20;
constexpr size_t kSignalStack = 64u << 10;

enum Outcome { kReturned = 0, kExited = 1, kCrashed = 2 };

struct ExitHandler {
  bool withArg;
  void *fn;
  void *arg;
};

struct ProgramRun {
  uint64_t main = 0;
  std::vector<std::string> args;
  std::vector<uint64_t> init;
  std::vector<uint64_t> fini;

  pthread_t thread{};
  std::atomic<bool> onThread{false};
  sigjmp_buf jump;

  int status = 0;
  Outcome outcome = kReturned;
  int signal = 0;
  uint64_t faultAddress = 0;
  uint64_t pc = 0;
  std::string error;
};

std::mutex gHandlersMutex;
std::vector<ExitHandler> gHandlers;
// Libraries the program dlopen()ed and has not closed, one entry per open: closed after its
// finalisers, so that the next program loads fresh copies bound to its own symbols, not
// copies still bound to the memory of a program that is gone.
std::vector<void *> gOpened;
// The run in progress (one at a time per process): the fault handler and exit() find it here.
std::atomic<ProgramRun *> gRun{nullptr};
std::atomic<bool> gBusy{false};

struct sigaction gPrevious[NSIG];
std::once_flag gInstallOnce;

bool OnProgramThread(ProgramRun *run) { return run != nullptr && run->onThread.load() && pthread_equal(pthread_self(), run->thread); }

void OnFault(int sig, siginfo_t *info, void *context) {
  ProgramRun *run = gRun.load();
  if (OnProgramThread(run)) {
    run->outcome = kCrashed;
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
    prev.sa_sigaction(sig, info, context);
  } else if (prev.sa_handler == SIG_DFL) {
    signal(sig, SIG_DFL);  // returning re-runs the faulting instruction, which now ends the process
  } else if (prev.sa_handler != SIG_IGN) {
    prev.sa_handler(sig);
  }
}

void InstallFaultHandlers() {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = OnFault;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGSEGV, SIGBUS, SIGILL, SIGFPE}) sigaction(sig, &sa, &gPrevious[sig]);
}

using InitFn = void (*)(int, char **, char **);
using MainFn = int (*)(int, char **, char **);

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
  for (auto &a : run->args) argv.push_back(a.data());
  argv.push_back(nullptr);
  int argc = static_cast<int>(run->args.size());

  run->thread = pthread_self();
  run->onThread.store(true);
  // Phase 1: initialisers and main. exit() and faults come back here.
  if (sigsetjmp(run->jump, 1) == 0) {
    for (uint64_t fn : run->init) reinterpret_cast<InitFn>(static_cast<uintptr_t>(fn))(argc, argv.data(), environ);
    run->status = reinterpret_cast<MainFn>(static_cast<uintptr_t>(run->main))(argc, argv.data(), environ);
    run->outcome = kReturned;
  }
  // Phase 2, as exit() does it: atexit handlers, then the finalisers. An exit() from a handler
  // ends the cleanup with the first status; a fault ends it as a crash.
  if (run->outcome != kCrashed) {
    // volatile: read again after siglongjmp has come back to this frame.
    volatile int status = run->status;
    volatile Outcome outcome = run->outcome;
    if (sigsetjmp(run->jump, 1) == 0) {
      RunExitHandlers();
      for (uint64_t fn : run->fini) reinterpret_cast<void (*)()>(static_cast<uintptr_t>(fn))();
    }
    if (run->outcome != kCrashed) {
      run->status = status;
      run->outcome = outcome;
    }
  }
  run->onThread.store(false);
  fflush(nullptr);
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

class ProgramWorker : public Napi::AsyncWorker {
 public:
  ProgramWorker(Napi::Env env, ProgramRun *run) : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), run_(run) {}
  ~ProgramWorker() override { delete run_; }
  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, kProgramStack);
    pthread_t thread;
    int err = pthread_create(&thread, &attr, ProgramThread, run_);
    pthread_attr_destroy(&attr);
    if (err != 0) {
      run_->error = std::string("pthread_create failed: ") + strerror(err);
    } else {
      pthread_join(thread, nullptr);
    }
    gRun.store(nullptr);
    gBusy.store(false);
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (!run_->error.empty()) {
      Napi::Error e = Napi::Error::New(env, run_->error);
      e.Set("code", Napi::String::New(env, "ERR_RUN_FAILED"));
      deferred_.Reject(e.Value());
      return;
    }
    Napi::Object r = Napi::Object::New(env);
    r.Set("status", Napi::Number::New(env, run_->status));
    r.Set("outcome", Napi::String::New(env, run_->outcome == kReturned ? "returned" : run_->outcome == kExited ? "exited" : "crashed"));
    r.Set("signal", Napi::Number::New(env, run_->signal));
    r.Set("faultAddress", Napi::Number::New(env, static_cast<double>(run_->faultAddress)));
    r.Set("pc", Napi::Number::New(env, static_cast<double>(run_->pc)));
    deferred_.Resolve(r);
  }

 private:
  Napi::Promise::Deferred deferred_;
  ProgramRun *run_;
};

// A wrong type leaves a pending TypeError and returns 0: callers check env.IsExceptionPending()
// before they use what they read (the addon is built without C++ exceptions).
uint64_t Address(Napi::Env env, Napi::Value v, const char *what) {
  if (!v.IsNumber()) {
    ThrowType(env, std::string(what) + " must be a number");
    return 0;
  }
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d > 9007199254740991.0 || d != static_cast<double>(static_cast<uint64_t>(d))) {
    ThrowType(env, std::string(what) + " must be a non-negative safe integer");
    return 0;
  }
  return static_cast<uint64_t>(d);
}

std::vector<uint64_t> Addresses(Napi::Env env, Napi::Value v, const char *what) {
  std::vector<uint64_t> out;
  if (!v.IsArray()) {
    ThrowType(env, std::string(what) + " must be an array of addresses");
    return out;
  }
  Napi::Array a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length() && !env.IsExceptionPending(); i++) out.push_back(Address(env, a.Get(i), what));
  return out;
}

// Reads runProgram's arguments into `run`; false (with a pending TypeError) when one is wrong.
bool ReadProgramArgs(const Napi::CallbackInfo &info, ProgramRun *run) {
  Napi::Env env = info.Env();
  run->main = Address(env, info[0], "main");
  if (env.IsExceptionPending()) return false;
  if (!info[1].IsArray()) {
    ThrowType(env, "argv must be an array of strings");
    return false;
  }
  Napi::Array a = info[1].As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value s = a.Get(i);
    if (!s.IsString()) {
      ThrowType(env, "argv must be an array of strings");
      return false;
    }
    run->args.push_back(s.As<Napi::String>().Utf8Value());
  }
  run->init = Addresses(env, info[2], "init");
  if (env.IsExceptionPending()) return false;
  run->fini = Addresses(env, info[3], "fini");
  return !env.IsExceptionPending();
}

// runProgram(main, argv, init, fini) -> Promise<{status, outcome, signal, faultAddress, pc}>
Napi::Value RunProgram(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto *run = new ProgramRun();
  if (!ReadProgramArgs(info, run)) {
    delete run;
    return env.Undefined();
  }
  bool expected = false;
  if (!gBusy.compare_exchange_strong(expected, true)) {
    delete run;
    return ThrowCode(env, "ERR_PROGRAM_RUNNING", "a program is already running in this process; one runs at a time");
  }
  std::call_once(gInstallOnce, InstallFaultHandlers);
  {
    std::lock_guard<std::mutex> lock(gHandlersMutex);
    gHandlers.clear();
  }
  gRun.store(run);
  auto *worker = new ProgramWorker(env, run);
  Napi::Promise p = worker->Promise();
  worker->Queue();
  return p;
}

// Clears O_NONBLOCK on a descriptor: a program writing to its stdout expects blocking writes,
// while Node leaves pipes it has touched non-blocking (and the flag is shared by every process
// holding the same open file).
Napi::Value SetBlocking(const Napi::CallbackInfo &info) {
  int fd = static_cast<int>(Address(info.Env(), info[0], "fd"));
  JITMEM_ARGS_OK(info);
  int flags = fcntl(fd, F_GETFL);
  bool changed = false;
  if (flags >= 0 && (flags & O_NONBLOCK)) changed = fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) == 0;
  return Napi::Boolean::New(info.Env(), changed);
}

}  // namespace

extern "C" {

[[noreturn]] void jitmem_program_exit(int status) {
  ProgramRun *run = gRun.load();
  if (OnProgramThread(run)) {
    run->status = status;
    run->outcome = kExited;
    siglongjmp(run->jump, 1);
  }
  // Another thread of the program: exit() ends the process, as it would natively.
  fflush(nullptr);
  exit(status);
}

int jitmem_program_atexit(void (*fn)()) {
  std::lock_guard<std::mutex> lock(gHandlersMutex);
  gHandlers.push_back({false, reinterpret_cast<void *>(fn), nullptr});
  return 0;
}

int jitmem_program_cxa_atexit(void (*fn)(void *), void *arg, void * /*dso*/) {
  std::lock_guard<std::mutex> lock(gHandlersMutex);
  gHandlers.push_back({true, reinterpret_cast<void *>(fn), arg});
  return 0;
}

void *jitmem_program_dlopen(const char *file, int mode) {
  void *h = dlopen(file, mode);
  if (h != nullptr && file != nullptr) {
    std::lock_guard<std::mutex> lock(gHandlersMutex);
    gOpened.push_back(h);
  }
  return h;
}

int jitmem_program_dlclose(void *handle) {
  {
    std::lock_guard<std::mutex> lock(gHandlersMutex);
    for (auto it = gOpened.rbegin(); it != gOpened.rend(); ++it) {
      if (*it == handle) {
        gOpened.erase(std::next(it).base());
        break;
      }
    }
  }
  return dlclose(handle);
}

}  // extern "C"

namespace {

// ---- Placing reservations --------------------------------------------------------------------
// Code built as a position-dependent or position-independent executable reaches data outside
// itself with 32-bit PC-relative or absolute addresses: the linker can only honour them when
// the program's memory lies within 2 GiB of that data (or in the low 2 GiB). These map a
// reservation inside a window of addresses: the highest free gap of /proc/self/maps that fits,
// taken with MAP_FIXED_NOREPLACE so that nothing mapped meanwhile is ever clobbered.

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

std::vector<std::pair<uint64_t, uint64_t>> Mappings() {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    uint64_t start = 0, end = 0;
    char dash = 0;
    std::istringstream in(line);
    in >> std::hex >> start >> dash >> end;
    if (dash == '-' && end > start) out.emplace_back(start, end);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// mmap inside [lo, hi): the highest place that fits, or MAP_FAILED with errno set.
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

Napi::Value ThrowPlacement(Napi::Env env, const char *what, uint64_t length, uint64_t lo, uint64_t hi) {
  int err = errno;
  char buf[256];
  snprintf(buf, sizeof buf, "%s: no free range of %llu bytes inside [0x%llx, 0x%llx) (%s)", what, static_cast<unsigned long long>(length),
           static_cast<unsigned long long>(lo), static_cast<unsigned long long>(hi), strerror(err));
  Napi::Error e = Napi::Error::New(env, buf);
  e.Set("code", Napi::String::New(env, err == ENOMEM ? "ERR_NO_ROOM_IN_WINDOW" : "ERR_MMAP"));
  e.Set("syscall", Napi::String::New(env, "mmap"));
  e.ThrowAsJavaScriptException();
  return env.Undefined();
}

int ProtFlags(uint64_t p) { return (p & 1 ? PROT_READ : 0) | (p & 2 ? PROT_WRITE : 0) | (p & 4 ? PROT_EXEC : 0); }

// reserveWithin(length, prot, lo, hi) -> address of anonymous memory (MAP_NORESERVE).
Napi::Value ReserveWithin(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  uint64_t length = Address(env, info[0], "length"), prot = Address(env, info[1], "prot");
  uint64_t lo = Address(env, info[2], "lo"), hi = Address(env, info[3], "hi");
  JITMEM_ARGS_OK(info);
  void *p = MapWithin(length, ProtFlags(prot), MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, lo, hi);
  if (p == MAP_FAILED) return ThrowPlacement(env, "reserveWithin", length, lo, hi);
  return Napi::Number::New(env, static_cast<double>(reinterpret_cast<uintptr_t>(p)));
}

// mapSharedWithin(fd, length, prot, lo, hi) -> address of a MAP_SHARED mapping of fd.
Napi::Value MapSharedWithin(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = static_cast<int>(Address(env, info[0], "fd"));
  uint64_t length = Address(env, info[1], "length"), prot = Address(env, info[2], "prot");
  uint64_t lo = Address(env, info[3], "lo"), hi = Address(env, info[4], "hi");
  JITMEM_ARGS_OK(info);
  void *p = MapWithin(length, ProtFlags(prot), MAP_SHARED, fd, lo, hi);
  if (p == MAP_FAILED) return ThrowPlacement(env, "mapSharedWithin", length, lo, hi);
  return Napi::Number::New(env, static_cast<double>(reinterpret_cast<uintptr_t>(p)));
}

Napi::Value ProgramRuntime(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  auto addr = [&](void *p) { return Napi::Number::New(env, static_cast<double>(reinterpret_cast<uintptr_t>(p))); };
  o.Set("exit", addr(reinterpret_cast<void *>(&jitmem_program_exit)));
  o.Set("atexit", addr(reinterpret_cast<void *>(&jitmem_program_atexit)));
  o.Set("__cxa_atexit", addr(reinterpret_cast<void *>(&jitmem_program_cxa_atexit)));
  o.Set("dlopen", addr(reinterpret_cast<void *>(&jitmem_program_dlopen)));
  o.Set("dlclose", addr(reinterpret_cast<void *>(&jitmem_program_dlclose)));
  return o;
}

}  // namespace

// Called from the module's init.
void RegisterRunProgram(Napi::Env env, Napi::Object exports) {
  exports.Set("runProgram", Napi::Function::New(env, RunProgram));
  exports.Set("programRuntime", Napi::Function::New(env, ProgramRuntime));
  exports.Set("setBlocking", Napi::Function::New(env, SetBlocking));
  exports.Set("reserveWithin", Napi::Function::New(env, ReserveWithin));
  exports.Set("mapSharedWithin", Napi::Function::New(env, MapSharedWithin));
}
