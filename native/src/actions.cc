// The addon's own alloc actions, and the unwinder's frame registration they and the linker use.

#include "jitmem.h"


extern "C" {
// libgcc's unwinder entry points; the executor registers JIT'd .eh_frame sections with them.
void __register_frame(void *begin) __attribute__((weak));
void __deregister_frame(void *begin) __attribute__((weak));
}

namespace jitmem {
namespace {

Napi::Value ActionAddresses(const Napi::CallbackInfo &info) {
  Napi::Object o = Napi::Object::New(info.Env());
  auto addr = [&](CWrapperFunctionBuffer (*f)(const char *, size_t)) {
    return Napi::Number::New(info.Env(), static_cast<double>(reinterpret_cast<uintptr_t>(f)));
  };
  o.Set("registerEHFrame", addr(jitmem_register_eh_frame_action));
  o.Set("deregisterEHFrame", addr(jitmem_deregister_eh_frame_action));
  o.Set("trace", addr(jitmem_trace_action));
  o.Set("fail", addr(jitmem_fail_action));
  return o;
}

Napi::Value RegisterFrame(const Napi::CallbackInfo &info) {
  uint64_t addr = U64(info, 0, "address");
  JITMEM_ARGS_OK(info);
  if (!__register_frame) {
    Napi::Error e = Napi::Error::New(info.Env(), "__register_frame is not available in this process");
    e.Set("code", Napi::String::New(info.Env(), "ERR_NO_UNWINDER"));
    e.ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  __register_frame(Ptr(addr));
  return info.Env().Undefined();
}

Napi::Value DeregisterFrame(const Napi::CallbackInfo &info) {
  uint64_t addr = U64(info, 0, "address");
  JITMEM_ARGS_OK(info);
  if (!__deregister_frame) {
    Napi::Error e = Napi::Error::New(info.Env(), "__deregister_frame is not available in this process");
    e.Set("code", Napi::String::New(info.Env(), "ERR_NO_UNWINDER"));
    e.ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  __deregister_frame(Ptr(addr));
  return info.Env().Undefined();
}

// Walks this thread's stack through the unwinder (a diagnostic the executor offers, so that a
// test can make the unwinder read everything that was registered).
Napi::Value UnwindProbeJs(const Napi::CallbackInfo &info) { return Napi::Number::New(info.Env(), UnwindProbe()); }

}  // namespace

void RegisterActions(Napi::Env env, Napi::Object exports) {
  exports.Set("actionAddresses", Napi::Function::New(env, ActionAddresses));
  exports.Set("registerFrame", Napi::Function::New(env, RegisterFrame));
  exports.Set("deregisterFrame", Napi::Function::New(env, DeregisterFrame));
  exports.Set("unwindProbe", Napi::Function::New(env, UnwindProbeJs));
}

}  // namespace jitmem
