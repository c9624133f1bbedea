// Anonymous memory: mmap, mprotect, munmap, zero-copy views, copies, I-cache flushes and the
// instruction-stream barrier that goes with them.

#include "jitmem.h"

#include <linux/membarrier.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace jitmem {
namespace {

Napi::Value PageSize(const Napi::CallbackInfo &info) {
  return Napi::Number::New(info.Env(), static_cast<double>(sysconf(_SC_PAGESIZE)));
}

Napi::Value Reserve(const Napi::CallbackInfo &info) {
  uint64_t len = U64(info, 0, "length");
  JITMEM_ARGS_OK(info);
  uint64_t prot = U64(info, 1, "protection");
  JITMEM_ARGS_OK(info);
  void *p = mmap(nullptr, len, Prot(prot), MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED)
    return ThrowErrno(info.Env(), "mmap", "length=" + std::to_string(len) + ", prot=" + std::to_string(prot), errno);
  return Napi::Number::New(info.Env(), static_cast<double>(reinterpret_cast<uintptr_t>(p)));
}

Napi::Value Protect(const Napi::CallbackInfo &info) {
  uint64_t addr = U64(info, 0, "address"), len = U64(info, 1, "length"), prot = U64(info, 2, "protection");
  JITMEM_ARGS_OK(info);
  if (mprotect(Ptr(addr), len, Prot(prot)) != 0)
    return ThrowErrno(info.Env(), "mprotect",
               "address=" + Hex(addr) + ", length=" + std::to_string(len) + ", prot=" + std::to_string(prot), errno);
  return info.Env().Undefined();
}

Napi::Value Unmap(const Napi::CallbackInfo &info) {
  uint64_t addr = U64(info, 0, "address"), len = U64(info, 1, "length");
  JITMEM_ARGS_OK(info);
  if (munmap(Ptr(addr), len) != 0)
    return ThrowErrno(info.Env(), "munmap", "address=" + Hex(addr) + ", length=" + std::to_string(len), errno);
  return info.Env().Undefined();
}

// madvise(addr, len, advice): what the kernel may do with pages a slab no longer uses (advice
// checked by the caller: MADV_DONTNEED, MADV_FREE or MADV_REMOVE).
Napi::Value Advise(const Napi::CallbackInfo &info) {
  uint64_t addr = U64(info, 0, "address"), len = U64(info, 1, "length"), advice = U64(info, 2, "advice");
  JITMEM_ARGS_OK(info);
  if (madvise(Ptr(addr), len, static_cast<int>(advice)) != 0)
    return ThrowErrno(info.Env(), "madvise",
               "address=" + Hex(addr) + ", length=" + std::to_string(len) + ", advice=" + std::to_string(advice), errno);
  return info.Env().Undefined();
}

// A Uint8Array over [addr, addr+len) with no copy. The memory is not owned by V8: callers
// detach every view before the pages change protection or go away.
Napi::Value View(const Napi::CallbackInfo &info) {
  uint64_t addr = U64(info, 0, "address"), len = U64(info, 1, "length");
  JITMEM_ARGS_OK(info);
  Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(info.Env(), Ptr(addr), len);
  return Napi::Uint8Array::New(info.Env(), len, ab, 0);
}

Napi::Value Detach(const Napi::CallbackInfo &info) {
  Napi::Value v = info.Length() > 0 ? info[0] : info.Env().Undefined();
  Napi::ArrayBuffer ab;
  if (v.IsArrayBuffer()) ab = v.As<Napi::ArrayBuffer>();
  else if (v.IsTypedArray()) ab = v.As<Napi::TypedArray>().ArrayBuffer();
  else return ThrowType(info.Env(), "detach takes an ArrayBuffer or a typed array");
  if (!ab.IsDetached()) ab.Detach();
  return info.Env().Undefined();
}

Napi::Value CopyIn(const Napi::CallbackInfo &info) {
  uint64_t addr = U64(info, 0, "address");
  JITMEM_ARGS_OK(info);
  Napi::Uint8Array src = Bytes(info, 1, "source");
  JITMEM_ARGS_OK(info);
  if (src.ByteLength() > 0) memcpy(Ptr(addr), src.Data(), src.ByteLength());
  return info.Env().Undefined();
}

Napi::Value CopyOut(const Napi::CallbackInfo &info) {
  uint64_t addr = U64(info, 0, "address");
  JITMEM_ARGS_OK(info);
  Napi::Uint8Array dst = Bytes(info, 1, "destination");
  JITMEM_ARGS_OK(info);
  if (dst.ByteLength() > 0) memcpy(dst.Data(), Ptr(addr), dst.ByteLength());
  return info.Env().Undefined();
}

Napi::Value Fill(const Napi::CallbackInfo &info) {
  uint64_t addr = U64(info, 0, "address"), len = U64(info, 1, "length"), byte = U64(info, 2, "byte");
  JITMEM_ARGS_OK(info);
  if (len > 0) memset(Ptr(addr), static_cast<int>(byte & 0xff), len);
  return info.Env().Undefined();
}

// Moves len bytes between two addresses of this process (ranges may overlap).
Napi::Value Move(const Napi::CallbackInfo &info) {
  uint64_t dst = U64(info, 0, "destination"), src = U64(info, 1, "source"), len = U64(info, 2, "length");
  JITMEM_ARGS_OK(info);
  if (len > 0) memmove(Ptr(dst), Ptr(src), len);
  return info.Env().Undefined();
}

Napi::Value FlushICache(const Napi::CallbackInfo &info) {
  uint64_t addr = U64(info, 0, "address"), len = U64(info, 1, "length");
  JITMEM_ARGS_OK(info);
  char *b = static_cast<char *>(Ptr(addr));
  __builtin___clear_cache(b, b + len);
  return info.Env().Undefined();
}

// Makes every thread of this process serialize its instruction stream before it runs user code
// again (membarrier's SYNC_CORE), so that code written through another mapping or by another
// process is what each of them fetches next: the cross-modifying-code rule of x86-64 and the
// context synchronization AArch64 asks for besides the cache maintenance. Returns false where
// the kernel has no such command (before 4.16), after which the caller falls back on the context
// switch every waiting thread goes through anyway.
Napi::Value SyncCore(const Napi::CallbackInfo &info) {
  static int registered = 0;  // 0 unknown, 1 registered, -1 unsupported
  if (registered == 0) {
    long r = syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE, 0, 0);
    registered = r == 0 ? 1 : -1;
  }
  if (registered < 0) return Napi::Boolean::New(info.Env(), false);
  if (syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE, 0, 0) != 0) {
    ThrowErrno(info.Env(), "membarrier", "PRIVATE_EXPEDITED_SYNC_CORE", errno);
  }
  return Napi::Boolean::New(info.Env(), true);
}

}  // namespace

void RegisterMemory(Napi::Env env, Napi::Object exports) {
  exports.Set("pageSize", Napi::Function::New(env, PageSize));
  exports.Set("reserve", Napi::Function::New(env, Reserve));
  exports.Set("protect", Napi::Function::New(env, Protect));
  exports.Set("unmap", Napi::Function::New(env, Unmap));
  exports.Set("advise", Napi::Function::New(env, Advise));
  exports.Set("view", Napi::Function::New(env, View));
  exports.Set("detach", Napi::Function::New(env, Detach));
  exports.Set("copyIn", Napi::Function::New(env, CopyIn));
  exports.Set("copyOut", Napi::Function::New(env, CopyOut));
  exports.Set("fill", Napi::Function::New(env, Fill));
  exports.Set("move", Napi::Function::New(env, Move));
  exports.Set("flushICache", Napi::Function::New(env, FlushICache));
  exports.Set("syncCore", Napi::Function::New(env, SyncCore));
}

}  // namespace jitmem
