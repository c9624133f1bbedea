// Shared by the addon's source files: argument conversion and errno errors, kept small on
// purpose (see addon.cc for what belongs in the addon at all).
#pragma once

#include <napi.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include <cstdint>
#include <string>

#include "runtime.h"

namespace jitmem {

inline std::string ErrnoName(int err) {
  const char *name = strerrorname_np(err);
  return name ? name : "E" + std::to_string(err);
}

// The addon is built without C++ exceptions (-fno-exceptions): an error becomes a pending
// JavaScript exception and the function returns at once. A C++ throw would make the unwinder
// read every EH frame registered in the process, JIT'd ones included.

// Makes a pending JS Error with code = errno name; the caller returns right after.
inline Napi::Value ThrowErrno(Napi::Env env, const char *syscall, const std::string &detail, int err) {
  std::string msg = std::string(syscall) + "(" + detail + ") failed: " + ErrnoName(err) + " (" +
                    strerror(err) + ")";
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, ErrnoName(err)));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, syscall));
  e.ThrowAsJavaScriptException();
  return env.Undefined();
}

// A pending JS Error with `code`; the caller returns right after.
inline Napi::Value ThrowCode(Napi::Env env, const char *code, const std::string &msg) {
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, code));
  e.ThrowAsJavaScriptException();
  return env.Undefined();
}

// A pending TypeError (a wrong JS type: native/index.ts prevents those); the caller returns
// right after, or, from the argument helpers below, at its JITMEM_ARGS_OK check.
inline Napi::Value ThrowType(Napi::Env env, const std::string &msg) {
  if (env.IsExceptionPending()) return env.Undefined();
  Napi::TypeError e = Napi::TypeError::New(env, msg);
  e.Set("code", Napi::String::New(env, "ERR_INVALID_ARG_TYPE"));
  e.ThrowAsJavaScriptException();
  return env.Undefined();
}

// After reading arguments: a helper that found a wrong type left an exception pending.
#define JITMEM_ARGS_OK(info)                                  \
  do {                                                        \
    if ((info).Env().IsExceptionPending()) return (info).Env().Undefined(); \
  } while (0)

inline std::string Hex(uint64_t v) {
  char buf[32];
  snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

// Addresses and sizes travel as JS numbers (user-space addresses are below 2^48); the TS shell
// has already checked Number.isSafeInteger, so a double converts exactly.
inline uint64_t U64(const Napi::CallbackInfo &info, size_t i, const char *what) {
  if (i >= info.Length()) return ThrowType(info.Env(), std::string("missing argument: ") + what), 0;
  Napi::Value v = info[i];
  if (v.IsBigInt()) {
    bool lossless = false;
    uint64_t r = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) return ThrowType(info.Env(), std::string(what) + " does not fit in 64 bits"), 0;
    return r;
  }
  if (!v.IsNumber()) return ThrowType(info.Env(), std::string(what) + " must be a number"), 0;
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d > 9007199254740991.0 || d != static_cast<double>(static_cast<uint64_t>(d)))
    return ThrowType(info.Env(), std::string(what) + " must be a non-negative safe integer"), 0;
  return static_cast<uint64_t>(d);
}

inline int64_t I64(const Napi::CallbackInfo &info, const Napi::Value &v, const char *what) {
  if (v.IsBigInt()) {
    bool lossless = false;
    int64_t r = v.As<Napi::BigInt>().Int64Value(&lossless);
    if (!lossless) return ThrowType(info.Env(), std::string(what) + " does not fit in 64 bits"), 0;
    return r;
  }
  if (!v.IsNumber()) return ThrowType(info.Env(), std::string(what) + " must be a number or bigint"), 0;
  return v.As<Napi::Number>().Int64Value();
}

// LLVM's MemProt bits, as the TypeScript side passes protections (graph/alloc-group.ts's R, W, X).
constexpr uint64_t kMemProtRead = 1, kMemProtWrite = 2, kMemProtExec = 4;

// mmap/mprotect's flags for a MemProt mask.
inline int Prot(uint64_t p) {
  int prot = PROT_NONE;
  if (p & kMemProtRead) prot |= PROT_READ;
  if (p & kMemProtWrite) prot |= PROT_WRITE;
  if (p & kMemProtExec) prot |= PROT_EXEC;
  return prot;
}

inline Napi::Uint8Array Bytes(const Napi::CallbackInfo &info, size_t i, const char *what) {
  if (i >= info.Length() || !info[i].IsTypedArray() ||
      info[i].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    ThrowType(info.Env(), std::string(what) + " must be a Uint8Array");
    return Napi::Uint8Array();
  }
  return info[i].As<Napi::Uint8Array>();
}

inline std::string Str(const Napi::CallbackInfo &info, size_t i, const char *what) {
  if (i >= info.Length() || !info[i].IsString()) return ThrowType(info.Env(), std::string(what) + " must be a string"), std::string();
  return info[i].As<Napi::String>().Utf8Value();
}

inline void *Ptr(uint64_t a) { return reinterpret_cast<void *>(static_cast<uintptr_t>(a)); }

// LLVM's C wrapper-function ABI result (runtime.h): CWrapperFunctionBuffer fn(const char *, size_t).
using CWrapperFunctionBuffer = JitmemWrapperResult;

// Each source file adds its functions to the module's exports.
void RegisterMemory(Napi::Env env, Napi::Object exports);
void RegisterMappedFile(Napi::Env env, Napi::Object exports);
void RegisterShm(Napi::Env env, Napi::Object exports);
void RegisterCalls(Napi::Env env, Napi::Object exports);
void RegisterActions(Napi::Env env, Napi::Object exports);
void RegisterDispatch(Napi::Env env, Napi::Object exports);
void RegisterProcess(Napi::Env env, Napi::Object exports);
void RegisterDylib(Napi::Env env, Napi::Object exports);
void RegisterSpawn(Napi::Env env, Napi::Object exports);
void RegisterMachineSpeed(Napi::Env env, Napi::Object exports);

}  // namespace jitmem
