// The addon's own alloc actions, and the unwinder's frame registration they and the linker use.

#include "jitmem.h"

#include <unwind.h>

#include <cstdlib>

extern "C" {
// libgcc's unwinder entry points; the executor registers JIT'd .eh_frame sections with them.
void __register_frame(void *begin) __attribute__((weak));
void __deregister_frame(void *begin) __attribute__((weak));
}

namespace jitmem {
namespace {

// Real C functions with the wrapper ABI, so that an alloc action is just an address wherever it
// runs: the in-process mapper calls them here, and the jitmem executor advertises their
// addresses under LLVM's names. Each returns an SPSError: 00 on success, or 01, u64 length,
// message.

CWrapperFunctionBuffer SpsResult(const std::string &error) {
  CWrapperFunctionBuffer r;
  memset(&r, 0, sizeof r);
  if (error.empty()) {
    r.Size = 1;  // SPSError success: the single byte 00, stored inline
    return r;
  }
  size_t n = 1 + 8 + error.size();
  char *p = static_cast<char *>(malloc(n));
  if (!p) return r;  // Size 0 and null pointer: an empty result, which decodes as failure
  p[0] = 1;
  uint64_t len = error.size();
  memcpy(p + 1, &len, 8);
  memcpy(p + 9, error.data(), error.size());
  if (n <= sizeof(char *)) {
    memcpy(r.Data.Value, p, n);
    free(p);
  } else {
    r.Data.ValuePtr = p;
  }
  r.Size = n;
  return r;
}

bool ReadU64(const char *&p, size_t &left, uint64_t &out) {
  if (left < 8) return false;
  memcpy(&out, p, 8);
  p += 8;
  left -= 8;
  return true;
}

// args: SPSExecutorAddrRange (start, end) of an .eh_frame section.
extern "C" CWrapperFunctionBuffer jitmem_register_eh_frame_action(const char *data, size_t size) {
  uint64_t start, end;
  if (!ReadU64(data, size, start) || !ReadU64(data, size, end) || end < start)
    return SpsResult("jitmem_register_eh_frame_action: expected an address range (16 bytes)");
  if (!__register_frame) return SpsResult("__register_frame is not available in this process");
  if (end > start) __register_frame(Ptr(start));
  return SpsResult("");
}

extern "C" CWrapperFunctionBuffer jitmem_deregister_eh_frame_action(const char *data, size_t size) {
  uint64_t start, end;
  if (!ReadU64(data, size, start) || !ReadU64(data, size, end) || end < start)
    return SpsResult("jitmem_deregister_eh_frame_action: expected an address range (16 bytes)");
  if (!__deregister_frame) return SpsResult("__deregister_frame is not available in this process");
  if (end > start) __deregister_frame(Ptr(start));
  return SpsResult("");
}

// args: (addr log, u64 capacity, u64 value). The log is a u64 count followed by `capacity`
// u64 slots in target memory; the action appends `value`. It makes the order in which alloc
// actions run observable in executor memory; a full log is an error, not an overrun.
extern "C" CWrapperFunctionBuffer jitmem_trace_action(const char *data, size_t size) {
  uint64_t log, capacity, value;
  if (!ReadU64(data, size, log) || !ReadU64(data, size, capacity) || !ReadU64(data, size, value) || log == 0 ||
      log % 8 != 0)
    return SpsResult("jitmem_trace_action: expected (8-aligned log address, u64 capacity, u64 value)");
  uint64_t *slots = static_cast<uint64_t *>(Ptr(log));
  uint64_t n = slots[0];
  if (n >= capacity) return SpsResult("jitmem_trace_action: trace log at " + Hex(log) + " is full (" + std::to_string(capacity) + " entries)");
  slots[1 + n] = value;
  slots[0] = n + 1;
  return SpsResult("");
}

// args: anything. Always fails with a fixed message: lets tests see a failing finalize action
// unwind the actions that ran before it.
extern "C" CWrapperFunctionBuffer jitmem_fail_action(const char *, size_t) {
  return SpsResult("jitmem_fail_action: this action always fails");
}

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

// Walks this thread's stack through the unwinder, which looks up the FDE of every frame: first
// among the frames registered with __register_frame (libgcc searches those before the loaded
// objects' own tables, parsing each one it has not seen yet), then in the objects. The executor
// offers it as a diagnostic service, so that a test can make the unwinder read everything that
// was registered; the addon itself never throws a C++ exception that would do the same.
_Unwind_Reason_Code CountFrame(struct _Unwind_Context *, void *count) {
  ++*static_cast<int *>(count);
  return _URC_NO_REASON;
}

Napi::Value UnwindProbe(const Napi::CallbackInfo &info) {
  int frames = 0;
  _Unwind_Backtrace(CountFrame, &frames);
  return Napi::Number::New(info.Env(), frames);
}

}  // namespace

void RegisterActions(Napi::Env env, Napi::Object exports) {
  exports.Set("actionAddresses", Napi::Function::New(env, ActionAddresses));
  exports.Set("registerFrame", Napi::Function::New(env, RegisterFrame));
  exports.Set("deregisterFrame", Napi::Function::New(env, DeregisterFrame));
  exports.Set("unwindProbe", Napi::Function::New(env, UnwindProbe));
}

}  // namespace jitmem
