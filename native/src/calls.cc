// Calling code at an address: the C ABI shims that cannot be written in JavaScript. A direct
// int64 call, LLVM's C wrapper-function ABI (alloc actions, wrapper calls), and run-as calls on a
// libuv pool thread so that the executor's event loop keeps serving its controller meanwhile (as
// LLVM's executor runs each call on a thread of its own).

#include "jitmem.h"

#include <unistd.h>

#include <cstdlib>
#include <vector>

namespace jitmem {
namespace {

// Calls the code at addr as int64_t f(int64_t x6); unused registers carry zeros, which the
// SysV and AAPCS64 calling conventions allow for functions taking fewer arguments.
Napi::Value Call(const Napi::CallbackInfo &info) {
  uint64_t addr = U64(info, 0, "address");
  JITMEM_ARGS_OK(info);
  int64_t a[6] = {0, 0, 0, 0, 0, 0};
  if (info.Length() > 1) {
    if (!info[1].IsArray()) return ThrowType(info.Env(), "arguments must be an array");
    Napi::Array args = info[1].As<Napi::Array>();
    if (args.Length() > 6) return ThrowType(info.Env(), "at most 6 integer arguments");
    for (uint32_t i = 0; i < args.Length(); i++) a[i] = I64(info, args.Get(i), "argument");
    JITMEM_ARGS_OK(info);
  }
  using Fn = int64_t (*)(int64_t, int64_t, int64_t, int64_t, int64_t, int64_t);
  Fn fn = reinterpret_cast<Fn>(static_cast<uintptr_t>(addr));
  int64_t r = fn(a[0], a[1], a[2], a[3], a[4], a[5]);
  return Napi::BigInt::New(info.Env(), r);
}

Napi::Value CallWrapper(const Napi::CallbackInfo &info) {
  uint64_t addr = U64(info, 0, "address");
  JITMEM_ARGS_OK(info);
  Napi::Uint8Array args = Bytes(info, 1, "argument bytes");
  JITMEM_ARGS_OK(info);
  using Fn = CWrapperFunctionBuffer (*)(const char *, size_t);
  Fn fn = reinterpret_cast<Fn>(static_cast<uintptr_t>(addr));
  CWrapperFunctionBuffer r = fn(reinterpret_cast<const char *>(args.Data()), args.ByteLength());
  if (r.Size == 0 && r.Data.ValuePtr != nullptr) {
    std::string msg = r.Data.ValuePtr;
    free(r.Data.ValuePtr);
    Napi::Error e = Napi::Error::New(info.Env(), "wrapper function at " + Hex(addr) + " failed: " + msg);
    e.Set("code", Napi::String::New(info.Env(), "ERR_WRAPPER_OUT_OF_BAND"));
    e.ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  const char *src = r.Size > sizeof(char *) ? r.Data.ValuePtr : r.Data.Value;
  Napi::Uint8Array out = Napi::Uint8Array::New(info.Env(), r.Size);
  if (r.Size > 0) memcpy(out.Data(), src, r.Size);
  if (r.Size > sizeof(char *)) free(r.Data.ValuePtr);
  return out;
}

// The executor runs run-as calls on a libuv pool thread so that its event loop keeps serving
// the controller meanwhile (as LLVM's executor runs each call on a thread of its own). That is
// also what makes JIT dispatch possible: JIT'd code calls jitmem_dispatch, which hands the call
// to the main thread through a thread-safe function and blocks until the controller's answer
// comes back through DispatchReply.

// Calls addr on a pool thread: kind 0 = int32 f(int32 arg), 1 = int32 f(void), 2 = main(argv).
class CallWorker : public Napi::AsyncWorker {
 public:
  CallWorker(Napi::Env env, uint64_t addr, int kind, int64_t arg, std::vector<std::string> argv)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), addr_(addr), kind_(kind), arg_(arg),
        argv_(std::move(argv)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Execute() override {
    if (kind_ == 0) {
      using Fn = int32_t (*)(int32_t);
      result_ = reinterpret_cast<Fn>(static_cast<uintptr_t>(addr_))(static_cast<int32_t>(arg_));
    } else if (kind_ == 1) {
      using Fn = int32_t (*)(void);
      result_ = reinterpret_cast<Fn>(static_cast<uintptr_t>(addr_))();
    } else {
      std::vector<char *> argv;
      for (auto &a : argv_) argv.push_back(a.data());
      argv.push_back(nullptr);
      using Main = int (*)(int, char **, char **);
      result_ = reinterpret_cast<Main>(static_cast<uintptr_t>(addr_))(static_cast<int>(argv_.size()), argv.data(), environ);
      fflush(nullptr);
    }
  }
  void OnOK() override { deferred_.Resolve(Napi::Number::New(Env(), result_)); }
  void OnError(const Napi::Error &e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  uint64_t addr_;
  int kind_;
  int64_t arg_;
  std::vector<std::string> argv_;
  int64_t result_ = 0;
};

Napi::Value CallAsync(const Napi::CallbackInfo &info) {
  uint64_t addr = U64(info, 0, "address");
  JITMEM_ARGS_OK(info);
  int64_t kind = I64(info, info[1], "kind");
  JITMEM_ARGS_OK(info);
  if (kind < 0 || kind > 2) return ThrowType(info.Env(), "kind must be 0 (int(int)), 1 (int(void)) or 2 (main)");
  int64_t arg = 0;
  std::vector<std::string> argv;
  if (kind == 0) arg = I64(info, info[2], "argument");
  JITMEM_ARGS_OK(info);
  if (kind == 2) {
    if (info.Length() < 3 || !info[2].IsArray()) return ThrowType(info.Env(), "argv must be an array of strings");
    Napi::Array a = info[2].As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) {
      Napi::Value v = a.Get(i);
      if (!v.IsString()) return ThrowType(info.Env(), "argv must be an array of strings");
      argv.push_back(v.As<Napi::String>().Utf8Value());
    }
  }
  auto *w = new CallWorker(info.Env(), addr, static_cast<int>(kind), arg, std::move(argv));
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

}  // namespace

void RegisterCalls(Napi::Env env, Napi::Object exports) {
  exports.Set("call", Napi::Function::New(env, Call));
  exports.Set("callWrapper", Napi::Function::New(env, CallWrapper));
  exports.Set("callAsync", Napi::Function::New(env, CallAsync));
}

}  // namespace jitmem
