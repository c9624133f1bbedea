// The addon's side of running a JIT-linked program in this process (the in-process mapper):
// a Promise around program_runtime.cc (shared with the native executor), and the N-API
// wrappers of reservation placement.

#include "jitmem.h"

#include <fcntl.h>
#include <sys/mman.h>

#include <cerrno>
#include <string>
#include <vector>

namespace {

using jitmem::ProgramRun;
using jitmem::ThrowCode;
using jitmem::ThrowType;

class ProgramWorker : public Napi::AsyncWorker {
 public:
  ProgramWorker(Napi::Env env, ProgramRun *run) : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), run_(run) {}
  ~ProgramWorker() override { delete run_; }
  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override { jitmem::ProgramRunToEnd(run_); }

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
    r.Set("outcome", Napi::String::New(env, run_->outcome == jitmem::kProgramReturned ? "returned" : run_->outcome == jitmem::kProgramExited ? "exited" : "crashed"));
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
  if (!jitmem::ProgramBegin(run)) {
    delete run;
    return ThrowCode(env, "ERR_PROGRAM_RUNNING", "a program is already running in this process; one runs at a time");
  }
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

// ---- Placing reservations (MapWithin in program_runtime.cc) ---------------------------------

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

// reserveWithin(length, prot, lo, hi) -> address of anonymous memory (MAP_NORESERVE).
Napi::Value ReserveWithin(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  uint64_t length = Address(env, info[0], "length"), prot = Address(env, info[1], "prot");
  uint64_t lo = Address(env, info[2], "lo"), hi = Address(env, info[3], "hi");
  JITMEM_ARGS_OK(info);
  void *p = jitmem::MapWithin(length, jitmem::Prot(prot), MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, lo, hi);
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
  void *p = jitmem::MapWithin(length, jitmem::Prot(prot), MAP_SHARED, fd, lo, hi);
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
