// Loading libraries and looking up their symbols for the executor's dylib manager.

#include "jitmem.h"

#include <dlfcn.h>

namespace jitmem {
namespace {

// dlopen(path) with RTLD_NOW|RTLD_GLOBAL; an empty path means the process's global scope.
Napi::Value DlOpen(const Napi::CallbackInfo &info) {
  std::string path = Str(info, 0, "path");
  JITMEM_ARGS_OK(info);
  dlerror();
  void *h = dlopen(path.empty() ? nullptr : path.c_str(), RTLD_NOW | RTLD_GLOBAL);
  if (!h) {
    const char *msg = dlerror();
    Napi::Error e = Napi::Error::New(info.Env(), msg ? msg : ("dlopen failed: " + path).c_str());
    e.Set("code", Napi::String::New(info.Env(), "ERR_DLOPEN"));
    e.Set("syscall", Napi::String::New(info.Env(), "dlopen"));
    e.ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  return Napi::Number::New(info.Env(), static_cast<double>(reinterpret_cast<uintptr_t>(h)));
}

// Returns the symbol's address, or 0 when the handle does not define it.
Napi::Value DlSym(const Napi::CallbackInfo &info) {
  uint64_t handle = U64(info, 0, "handle");
  JITMEM_ARGS_OK(info);
  std::string name = Str(info, 1, "name");
  JITMEM_ARGS_OK(info);
  dlerror();
  void *p = dlsym(Ptr(handle), name.c_str());
  if (dlerror() != nullptr) p = nullptr;
  return Napi::Number::New(info.Env(), static_cast<double>(reinterpret_cast<uintptr_t>(p)));
}

// dlclose(handle): 0, or the dynamic linker's message.
Napi::Value DlClose(const Napi::CallbackInfo &info) {
  uint64_t handle = U64(info, 0, "handle");
  JITMEM_ARGS_OK(info);
  dlerror();
  if (dlclose(Ptr(handle)) != 0) {
    const char *msg = dlerror();
    Napi::Error e = Napi::Error::New(info.Env(), msg ? msg : "dlclose failed");
    e.Set("code", Napi::String::New(info.Env(), "ERR_DLCLOSE"));
    e.ThrowAsJavaScriptException();
  }
  return info.Env().Undefined();
}

}  // namespace

void RegisterDylib(Napi::Env env, Napi::Object exports) {
  exports.Set("dlopen", Napi::Function::New(env, DlOpen));
  exports.Set("dlsym", Napi::Function::New(env, DlSym));
  exports.Set("dlclose", Napi::Function::New(env, DlClose));
}

}  // namespace jitmem
