// JIT dispatch: JIT'd code running on a pool thread calls jitmem_dispatch, which hands the call
// to the main thread through a thread-safe function and blocks until the controller's answer
// comes back through DispatchReply.

#include "jitmem.h"

#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

namespace jitmem {
namespace {

struct DispatchRequest {
  uint64_t tag;
  std::vector<char> args;
  std::mutex m;
  std::condition_variable cv;
  bool done = false;
  std::vector<char> result;
  std::string error;
};

std::mutex gDispatchMutex;
Napi::ThreadSafeFunction gDispatch;
bool gDispatchOpen = false;
std::thread::id gMainThread;

CWrapperFunctionBuffer OutOfBand(const std::string &msg) {
  CWrapperFunctionBuffer r;
  memset(&r, 0, sizeof r);
  r.Data.ValuePtr = strdup(msg.c_str());
  return r;
}

// __llvm_orc_SimpleRemoteEPC_dispatch_fn: (ctx, fnTag, argData, argSize) -> result buffer.
extern "C" CWrapperFunctionBuffer jitmem_dispatch(void *, const void *tag, const char *data, size_t size) {
  if (std::this_thread::get_id() == gMainThread)
    return OutOfBand("jit_dispatch is only available to code started by run_as_* (it would block the executor's event loop)");
  auto *req = new DispatchRequest();
  req->tag = reinterpret_cast<uintptr_t>(tag);
  req->args.assign(data, data + size);
  {
    std::lock_guard<std::mutex> lock(gDispatchMutex);
    napi_status st = gDispatchOpen ? gDispatch.BlockingCall(req, [](Napi::Env env, Napi::Function fn, DispatchRequest *r) {
      Napi::Buffer<char> args = Napi::Buffer<char>::Copy(env, r->args.data(), r->args.size());
      fn.Call({Napi::Number::New(env, static_cast<double>(r->tag)), args, Napi::External<DispatchRequest>::New(env, r)});
    }) : napi_closing;
    if (st != napi_ok) {
      delete req;
      return OutOfBand("jit_dispatch not available (the executor's session is shut down)");
    }
  }
  std::unique_lock<std::mutex> lock(req->m);
  req->cv.wait(lock, [req] { return req->done; });
  CWrapperFunctionBuffer r;
  memset(&r, 0, sizeof r);
  if (!req->error.empty()) {
    r = OutOfBand(req->error);
  } else if (req->result.size() <= sizeof(char *)) {
    memcpy(r.Data.Value, req->result.data(), req->result.size());
    r.Size = req->result.size();
  } else {
    r.Data.ValuePtr = static_cast<char *>(malloc(req->result.size()));
    if (r.Data.ValuePtr) {
      memcpy(r.Data.ValuePtr, req->result.data(), req->result.size());
      r.Size = req->result.size();
    } else {
      r = OutOfBand("jit_dispatch: out of memory for the result");
    }
  }
  lock.unlock();
  delete req;
  return r;
}

// dispatchStart(callback(tag, args, request)) -> address of jitmem_dispatch.
Napi::Value DispatchStart(const Napi::CallbackInfo &info) {
  if (info.Length() < 1 || !info[0].IsFunction()) return ThrowType(info.Env(), "dispatchStart takes a callback");
  std::lock_guard<std::mutex> lock(gDispatchMutex);
  if (gDispatchOpen) gDispatch.Release();
  gDispatch = Napi::ThreadSafeFunction::New(info.Env(), info[0].As<Napi::Function>(), "jitmem_dispatch", 0, 1);
  // A pending dispatch must not keep the process alive once the session is over.
  gDispatch.Unref(info.Env());
  gDispatchOpen = true;
  gMainThread = std::this_thread::get_id();
  return Napi::Number::New(info.Env(), static_cast<double>(reinterpret_cast<uintptr_t>(&jitmem_dispatch)));
}

// dispatchReply(request, resultBytes | null, errorMessage): wakes the blocked JIT'd code.
Napi::Value DispatchReply(const Napi::CallbackInfo &info) {
  if (info.Length() < 1 || !info[0].IsExternal()) return ThrowType(info.Env(), "dispatchReply takes the request it was given");
  DispatchRequest *req = info[0].As<Napi::External<DispatchRequest>>().Data();
  std::lock_guard<std::mutex> lock(req->m);
  if (req->done) return ThrowType(info.Env(), "this dispatch request was already answered");
  if (info.Length() > 1 && info[1].IsTypedArray()) {
    Napi::Uint8Array bytes = Bytes(info, 1, "result");
    JITMEM_ARGS_OK(info);
    req->result.assign(reinterpret_cast<char *>(bytes.Data()), reinterpret_cast<char *>(bytes.Data()) + bytes.ByteLength());
  } else {
    req->error = info.Length() > 2 && info[2].IsString() ? info[2].As<Napi::String>().Utf8Value() : "jit_dispatch failed";
  }
  req->done = true;
  req->cv.notify_one();
  return info.Env().Undefined();
}

// dispatchStop(): later dispatches fail at once with an out-of-band error.
Napi::Value DispatchStop(const Napi::CallbackInfo &info) {
  std::lock_guard<std::mutex> lock(gDispatchMutex);
  if (gDispatchOpen) {
    gDispatch.Release();
    gDispatchOpen = false;
  }
  return info.Env().Undefined();
}

}  // namespace

void RegisterDispatch(Napi::Env env, Napi::Object exports) {
  exports.Set("dispatchStart", Napi::Function::New(env, DispatchStart));
  exports.Set("dispatchReply", Napi::Function::New(env, DispatchReply));
  exports.Set("dispatchStop", Napi::Function::New(env, DispatchStop));
}

}  // namespace jitmem
