// jitmem's native core: OS primitives and nothing else.
//
// Every argument check that reads well in TypeScript lives in native/index.ts; this file only
// guards against values that would make a syscall wrapper itself misbehave (wrong JS types),
// and turns every failing syscall into an Error carrying the errno name as `code` and the
// syscall as `syscall`, the way Node's own errors do.

#include <napi.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

extern "C" {
// libgcc's unwinder entry points; the executor registers JIT'd .eh_frame sections with them.
void __register_frame(void *begin) __attribute__((weak));
void __deregister_frame(void *begin) __attribute__((weak));
}

// Defined in run_program.cc.
void RegisterRunProgram(Napi::Env env, Napi::Object exports);

namespace {

std::string ErrnoName(int err) {
  const char *name = strerrorname_np(err);
  return name ? name : "E" + std::to_string(err);
}

[[noreturn]] void ThrowErrno(Napi::Env env, const char *syscall, const std::string &detail, int err) {
  std::string msg = std::string(syscall) + "(" + detail + ") failed: " + ErrnoName(err) + " (" +
                    strerror(err) + ")";
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, ErrnoName(err)));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, syscall));
  throw e;
}

[[noreturn]] void ThrowType(Napi::Env env, const std::string &msg) {
  Napi::TypeError e = Napi::TypeError::New(env, msg);
  e.Set("code", Napi::String::New(env, "ERR_INVALID_ARG_TYPE"));
  throw e;
}

std::string Hex(uint64_t v) {
  char buf[32];
  snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

// Addresses and sizes travel as JS numbers (user-space addresses are below 2^48); the TS shell
// has already checked Number.isSafeInteger, so a double converts exactly.
uint64_t U64(const Napi::CallbackInfo &info, size_t i, const char *what) {
  if (i >= info.Length()) ThrowType(info.Env(), std::string("missing argument: ") + what);
  Napi::Value v = info[i];
  if (v.IsBigInt()) {
    bool lossless = false;
    uint64_t r = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) ThrowType(info.Env(), std::string(what) + " does not fit in 64 bits");
    return r;
  }
  if (!v.IsNumber()) ThrowType(info.Env(), std::string(what) + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d > 9007199254740991.0 || d != static_cast<double>(static_cast<uint64_t>(d)))
    ThrowType(info.Env(), std::string(what) + " must be a non-negative safe integer");
  return static_cast<uint64_t>(d);
}

int64_t I64(const Napi::CallbackInfo &info, const Napi::Value &v, const char *what) {
  if (v.IsBigInt()) {
    bool lossless = false;
    int64_t r = v.As<Napi::BigInt>().Int64Value(&lossless);
    if (!lossless) ThrowType(info.Env(), std::string(what) + " does not fit in 64 bits");
    return r;
  }
  if (!v.IsNumber()) ThrowType(info.Env(), std::string(what) + " must be a number or bigint");
  return v.As<Napi::Number>().Int64Value();
}

int Prot(uint64_t p) {
  int prot = PROT_NONE;
  if (p & 1) prot |= PROT_READ;
  if (p & 2) prot |= PROT_WRITE;
  if (p & 4) prot |= PROT_EXEC;
  return prot;
}

Napi::Uint8Array Bytes(const Napi::CallbackInfo &info, size_t i, const char *what) {
  if (i >= info.Length() || !info[i].IsTypedArray() ||
      info[i].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    ThrowType(info.Env(), std::string(what) + " must be a Uint8Array");
  return info[i].As<Napi::Uint8Array>();
}

std::string Str(const Napi::CallbackInfo &info, size_t i, const char *what) {
  if (i >= info.Length() || !info[i].IsString()) ThrowType(info.Env(), std::string(what) + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

void *Ptr(uint64_t a) { return reinterpret_cast<void *>(static_cast<uintptr_t>(a)); }

Napi::Value PageSize(const Napi::CallbackInfo &info) {
  return Napi::Number::New(info.Env(), static_cast<double>(sysconf(_SC_PAGESIZE)));
}

Napi::Value Reserve(const Napi::CallbackInfo &info) {
  uint64_t len = U64(info, 0, "length");
  uint64_t prot = U64(info, 1, "protection");
  void *p = mmap(nullptr, len, Prot(prot), MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED)
    ThrowErrno(info.Env(), "mmap", "length=" + std::to_string(len) + ", prot=" + std::to_string(prot), errno);
  return Napi::Number::New(info.Env(), static_cast<double>(reinterpret_cast<uintptr_t>(p)));
}

Napi::Value Protect(const Napi::CallbackInfo &info) {
  uint64_t addr = U64(info, 0, "address"), len = U64(info, 1, "length"), prot = U64(info, 2, "protection");
  if (mprotect(Ptr(addr), len, Prot(prot)) != 0)
    ThrowErrno(info.Env(), "mprotect",
               "address=" + Hex(addr) + ", length=" + std::to_string(len) + ", prot=" + std::to_string(prot), errno);
  return info.Env().Undefined();
}

Napi::Value Unmap(const Napi::CallbackInfo &info) {
  uint64_t addr = U64(info, 0, "address"), len = U64(info, 1, "length");
  if (munmap(Ptr(addr), len) != 0)
    ThrowErrno(info.Env(), "munmap", "address=" + Hex(addr) + ", length=" + std::to_string(len), errno);
  return info.Env().Undefined();
}

// A Uint8Array over [addr, addr+len) with no copy. The memory is not owned by V8: callers
// detach every view before the pages change protection or go away.
Napi::Value View(const Napi::CallbackInfo &info) {
  uint64_t addr = U64(info, 0, "address"), len = U64(info, 1, "length");
  Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(info.Env(), Ptr(addr), len);
  return Napi::Uint8Array::New(info.Env(), len, ab, 0);
}

Napi::Value Detach(const Napi::CallbackInfo &info) {
  Napi::Value v = info.Length() > 0 ? info[0] : info.Env().Undefined();
  Napi::ArrayBuffer ab;
  if (v.IsArrayBuffer()) ab = v.As<Napi::ArrayBuffer>();
  else if (v.IsTypedArray()) ab = v.As<Napi::TypedArray>().ArrayBuffer();
  else ThrowType(info.Env(), "detach takes an ArrayBuffer or a typed array");
  if (!ab.IsDetached()) ab.Detach();
  return info.Env().Undefined();
}

Napi::Value CopyIn(const Napi::CallbackInfo &info) {
  uint64_t addr = U64(info, 0, "address");
  Napi::Uint8Array src = Bytes(info, 1, "source");
  if (src.ByteLength() > 0) memcpy(Ptr(addr), src.Data(), src.ByteLength());
  return info.Env().Undefined();
}

Napi::Value CopyOut(const Napi::CallbackInfo &info) {
  uint64_t addr = U64(info, 0, "address");
  Napi::Uint8Array dst = Bytes(info, 1, "destination");
  if (dst.ByteLength() > 0) memcpy(dst.Data(), Ptr(addr), dst.ByteLength());
  return info.Env().Undefined();
}

Napi::Value Fill(const Napi::CallbackInfo &info) {
  uint64_t addr = U64(info, 0, "address"), len = U64(info, 1, "length"), byte = U64(info, 2, "byte");
  if (len > 0) memset(Ptr(addr), static_cast<int>(byte & 0xff), len);
  return info.Env().Undefined();
}

// Moves len bytes between two addresses of this process (ranges may overlap).
Napi::Value Move(const Napi::CallbackInfo &info) {
  uint64_t dst = U64(info, 0, "destination"), src = U64(info, 1, "source"), len = U64(info, 2, "length");
  if (len > 0) memmove(Ptr(dst), Ptr(src), len);
  return info.Env().Undefined();
}

Napi::Value ShmCreate(const Napi::CallbackInfo &info) {
  std::string name = Str(info, 0, "name");
  uint64_t size = U64(info, 1, "size");
  int fd = shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
  if (fd < 0) ThrowErrno(info.Env(), "shm_open", "name=" + name + ", O_CREAT|O_EXCL", errno);
  if (ftruncate(fd, static_cast<off_t>(size)) != 0) {
    int err = errno;
    close(fd);
    shm_unlink(name.c_str());
    ThrowErrno(info.Env(), "ftruncate", "name=" + name + ", size=" + std::to_string(size), err);
  }
  return Napi::Number::New(info.Env(), fd);
}

Napi::Value ShmOpen(const Napi::CallbackInfo &info) {
  std::string name = Str(info, 0, "name");
  int fd = shm_open(name.c_str(), O_RDWR, 0600);
  if (fd < 0) ThrowErrno(info.Env(), "shm_open", "name=" + name, errno);
  return Napi::Number::New(info.Env(), fd);
}

Napi::Value ShmUnlink(const Napi::CallbackInfo &info) {
  std::string name = Str(info, 0, "name");
  if (shm_unlink(name.c_str()) != 0) ThrowErrno(info.Env(), "shm_unlink", "name=" + name, errno);
  return info.Env().Undefined();
}

Napi::Value FdSize(const Napi::CallbackInfo &info) {
  uint64_t fd = U64(info, 0, "fd");
  struct stat st;
  if (fstat(static_cast<int>(fd), &st) != 0) ThrowErrno(info.Env(), "fstat", "fd=" + std::to_string(fd), errno);
  return Napi::Number::New(info.Env(), static_cast<double>(st.st_size));
}

Napi::Value MapShared(const Napi::CallbackInfo &info) {
  uint64_t fd = U64(info, 0, "fd"), len = U64(info, 1, "length"), prot = U64(info, 2, "protection");
  void *p = mmap(nullptr, len, Prot(prot), MAP_SHARED, static_cast<int>(fd), 0);
  if (p == MAP_FAILED)
    ThrowErrno(info.Env(), "mmap",
               "fd=" + std::to_string(fd) + ", length=" + std::to_string(len) + ", prot=" + std::to_string(prot) +
                   ", MAP_SHARED",
               errno);
  return Napi::Number::New(info.Env(), static_cast<double>(reinterpret_cast<uintptr_t>(p)));
}

Napi::Value CloseFd(const Napi::CallbackInfo &info) {
  uint64_t fd = U64(info, 0, "fd");
  if (close(static_cast<int>(fd)) != 0) ThrowErrno(info.Env(), "close", "fd=" + std::to_string(fd), errno);
  return info.Env().Undefined();
}

Napi::Value FlushICache(const Napi::CallbackInfo &info) {
  uint64_t addr = U64(info, 0, "address"), len = U64(info, 1, "length");
  char *b = static_cast<char *>(Ptr(addr));
  __builtin___clear_cache(b, b + len);
  return info.Env().Undefined();
}

// Calls the code at addr as int64_t f(int64_t x6); unused registers carry zeros, which the
// SysV and AAPCS64 calling conventions allow for functions taking fewer arguments.
Napi::Value Call(const Napi::CallbackInfo &info) {
  uint64_t addr = U64(info, 0, "address");
  int64_t a[6] = {0, 0, 0, 0, 0, 0};
  if (info.Length() > 1) {
    if (!info[1].IsArray()) ThrowType(info.Env(), "arguments must be an array");
    Napi::Array args = info[1].As<Napi::Array>();
    if (args.Length() > 6) ThrowType(info.Env(), "at most 6 integer arguments");
    for (uint32_t i = 0; i < args.Length(); i++) a[i] = I64(info, args.Get(i), "argument");
  }
  using Fn = int64_t (*)(int64_t, int64_t, int64_t, int64_t, int64_t, int64_t);
  Fn fn = reinterpret_cast<Fn>(static_cast<uintptr_t>(addr));
  int64_t r = fn(a[0], a[1], a[2], a[3], a[4], a[5]);
  return Napi::BigInt::New(info.Env(), r);
}

// Calls addr as int main(int argc, char **argv, char **envp) with the given argv.
Napi::Value CallMain(const Napi::CallbackInfo &info) {
  uint64_t addr = U64(info, 0, "address");
  if (info.Length() < 2 || !info[1].IsArray()) ThrowType(info.Env(), "argv must be an array of strings");
  Napi::Array args = info[1].As<Napi::Array>();
  std::vector<std::string> store;
  for (uint32_t i = 0; i < args.Length(); i++) {
    Napi::Value v = args.Get(i);
    if (!v.IsString()) ThrowType(info.Env(), "argv must be an array of strings");
    store.push_back(v.As<Napi::String>().Utf8Value());
  }
  std::vector<char *> argv;
  for (auto &s : store) argv.push_back(s.data());
  argv.push_back(nullptr);
  using Main = int (*)(int, char **, char **);
  Main fn = reinterpret_cast<Main>(static_cast<uintptr_t>(addr));
  int r = fn(static_cast<int>(store.size()), argv.data(), environ);
  fflush(nullptr);
  return Napi::Number::New(info.Env(), r);
}

// Calls addr with LLVM's C wrapper-function ABI:
//   CWrapperFunctionBuffer fn(const char *argData, size_t argSize)
// where the 16-byte result holds up to 8 bytes inline, a malloc'd pointer above that, and an
// out-of-band error (Size 0, pointer to a malloc'd NUL-terminated message) otherwise.
struct CWrapperFunctionBuffer {
  union {
    char *ValuePtr;
    char Value[sizeof(char *)];
  } Data;
  size_t Size;
};

// ---- Alloc actions -------------------------------------------------------------------------
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

Napi::Value CallWrapper(const Napi::CallbackInfo &info) {
  uint64_t addr = U64(info, 0, "address");
  Napi::Uint8Array args = Bytes(info, 1, "argument bytes");
  using Fn = CWrapperFunctionBuffer (*)(const char *, size_t);
  Fn fn = reinterpret_cast<Fn>(static_cast<uintptr_t>(addr));
  CWrapperFunctionBuffer r = fn(reinterpret_cast<const char *>(args.Data()), args.ByteLength());
  if (r.Size == 0 && r.Data.ValuePtr != nullptr) {
    std::string msg = r.Data.ValuePtr;
    free(r.Data.ValuePtr);
    Napi::Error e = Napi::Error::New(info.Env(), "wrapper function at " + Hex(addr) + " failed: " + msg);
    e.Set("code", Napi::String::New(info.Env(), "ERR_WRAPPER_OUT_OF_BAND"));
    throw e;
  }
  const char *src = r.Size > sizeof(char *) ? r.Data.ValuePtr : r.Data.Value;
  Napi::Uint8Array out = Napi::Uint8Array::New(info.Env(), r.Size);
  if (r.Size > 0) memcpy(out.Data(), src, r.Size);
  if (r.Size > sizeof(char *)) free(r.Data.ValuePtr);
  return out;
}

// Sets a socket's send buffer (SO_SNDBUF, or SO_SNDBUFFORCE past the sysctl cap when allowed)
// and returns the size the kernel granted. Bulk transfers over a Unix socket pay a wake-up of
// the peer per buffer-full; a larger buffer means fewer of them.
Napi::Value SetSendBuffer(const Napi::CallbackInfo &info) {
  uint64_t fd = U64(info, 0, "fd"), bytes = U64(info, 1, "bytes");
  int v = static_cast<int>(bytes > (1u << 30) ? (1u << 30) : bytes);
  if (setsockopt(static_cast<int>(fd), SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof v) != 0 &&
      setsockopt(static_cast<int>(fd), SOL_SOCKET, SO_SNDBUF, &v, sizeof v) != 0)
    ThrowErrno(info.Env(), "setsockopt", "fd=" + std::to_string(fd) + ", SO_SNDBUF=" + std::to_string(v), errno);
  int got = 0;
  socklen_t len = sizeof got;
  if (getsockopt(static_cast<int>(fd), SOL_SOCKET, SO_SNDBUF, &got, &len) != 0)
    ThrowErrno(info.Env(), "getsockopt", "fd=" + std::to_string(fd) + ", SO_SNDBUF", errno);
  return Napi::Number::New(info.Env(), got);
}

Napi::Value SetAffinity(const Napi::CallbackInfo &info) {
  uint64_t pid = U64(info, 0, "pid");
  if (info.Length() < 2 || !info[1].IsArray()) ThrowType(info.Env(), "cpus must be an array of CPU numbers");
  Napi::Array cpus = info[1].As<Napi::Array>();
  cpu_set_t set;
  CPU_ZERO(&set);
  std::string list;
  for (uint32_t i = 0; i < cpus.Length(); i++) {
    int64_t c = I64(info, cpus.Get(i), "cpu");
    if (c < 0 || c >= CPU_SETSIZE) ThrowType(info.Env(), "cpu " + std::to_string(c) + " out of range");
    CPU_SET(static_cast<int>(c), &set);
    list += (i ? "," : "") + std::to_string(c);
  }
  if (sched_setaffinity(static_cast<pid_t>(pid), sizeof set, &set) != 0)
    ThrowErrno(info.Env(), "sched_setaffinity", "pid=" + std::to_string(pid) + ", cpus=[" + list + "]", errno);
  return info.Env().Undefined();
}

Napi::Value GetAffinity(const Napi::CallbackInfo &info) {
  uint64_t pid = U64(info, 0, "pid");
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(static_cast<pid_t>(pid), sizeof set, &set) != 0)
    ThrowErrno(info.Env(), "sched_getaffinity", "pid=" + std::to_string(pid), errno);
  Napi::Array out = Napi::Array::New(info.Env());
  uint32_t n = 0;
  for (int c = 0; c < CPU_SETSIZE; c++)
    if (CPU_ISSET(c, &set)) out.Set(n++, Napi::Number::New(info.Env(), c));
  return out;
}

Napi::Value CurrentCpu(const Napi::CallbackInfo &info) {
  int c = sched_getcpu();
  if (c < 0) ThrowErrno(info.Env(), "sched_getcpu", "", errno);
  return Napi::Number::New(info.Env(), c);
}

// dlopen(path) with RTLD_NOW|RTLD_GLOBAL; an empty path means the process's global scope.
Napi::Value DlOpen(const Napi::CallbackInfo &info) {
  std::string path = Str(info, 0, "path");
  dlerror();
  void *h = dlopen(path.empty() ? nullptr : path.c_str(), RTLD_NOW | RTLD_GLOBAL);
  if (!h) {
    const char *msg = dlerror();
    Napi::Error e = Napi::Error::New(info.Env(), msg ? msg : ("dlopen failed: " + path).c_str());
    e.Set("code", Napi::String::New(info.Env(), "ERR_DLOPEN"));
    e.Set("syscall", Napi::String::New(info.Env(), "dlopen"));
    throw e;
  }
  return Napi::Number::New(info.Env(), static_cast<double>(reinterpret_cast<uintptr_t>(h)));
}

// Returns the symbol's address, or 0 when the handle does not define it.
Napi::Value DlSym(const Napi::CallbackInfo &info) {
  uint64_t handle = U64(info, 0, "handle");
  std::string name = Str(info, 1, "name");
  dlerror();
  void *p = dlsym(Ptr(handle), name.c_str());
  if (dlerror() != nullptr) p = nullptr;
  return Napi::Number::New(info.Env(), static_cast<double>(reinterpret_cast<uintptr_t>(p)));
}

Napi::Value RegisterFrame(const Napi::CallbackInfo &info) {
  uint64_t addr = U64(info, 0, "address");
  if (!__register_frame) {
    Napi::Error e = Napi::Error::New(info.Env(), "__register_frame is not available in this process");
    e.Set("code", Napi::String::New(info.Env(), "ERR_NO_UNWINDER"));
    throw e;
  }
  __register_frame(Ptr(addr));
  return info.Env().Undefined();
}

Napi::Value DeregisterFrame(const Napi::CallbackInfo &info) {
  uint64_t addr = U64(info, 0, "address");
  if (!__deregister_frame) {
    Napi::Error e = Napi::Error::New(info.Env(), "__deregister_frame is not available in this process");
    e.Set("code", Napi::String::New(info.Env(), "ERR_NO_UNWINDER"));
    throw e;
  }
  __deregister_frame(Ptr(addr));
  return info.Env().Undefined();
}

// ---- Running JIT'd code off the main thread, and JIT dispatch ------------------------------
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
  int64_t kind = I64(info, info[1], "kind");
  if (kind < 0 || kind > 2) ThrowType(info.Env(), "kind must be 0 (int(int)), 1 (int(void)) or 2 (main)");
  int64_t arg = 0;
  std::vector<std::string> argv;
  if (kind == 0) arg = I64(info, info[2], "argument");
  if (kind == 2) {
    if (info.Length() < 3 || !info[2].IsArray()) ThrowType(info.Env(), "argv must be an array of strings");
    Napi::Array a = info[2].As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) {
      Napi::Value v = a.Get(i);
      if (!v.IsString()) ThrowType(info.Env(), "argv must be an array of strings");
      argv.push_back(v.As<Napi::String>().Utf8Value());
    }
  }
  auto *w = new CallWorker(info.Env(), addr, static_cast<int>(kind), arg, std::move(argv));
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

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
  if (info.Length() < 1 || !info[0].IsFunction()) ThrowType(info.Env(), "dispatchStart takes a callback");
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
  if (info.Length() < 1 || !info[0].IsExternal()) ThrowType(info.Env(), "dispatchReply takes the request it was given");
  DispatchRequest *req = info[0].As<Napi::External<DispatchRequest>>().Data();
  std::lock_guard<std::mutex> lock(req->m);
  if (req->done) ThrowType(info.Env(), "this dispatch request was already answered");
  if (info.Length() > 1 && info[1].IsTypedArray()) {
    Napi::Uint8Array bytes = Bytes(info, 1, "result");
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

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  RegisterRunProgram(env, exports);  // run_program.cc
  exports.Set("pageSize", Napi::Function::New(env, PageSize));
  exports.Set("reserve", Napi::Function::New(env, Reserve));
  exports.Set("protect", Napi::Function::New(env, Protect));
  exports.Set("unmap", Napi::Function::New(env, Unmap));
  exports.Set("view", Napi::Function::New(env, View));
  exports.Set("detach", Napi::Function::New(env, Detach));
  exports.Set("copyIn", Napi::Function::New(env, CopyIn));
  exports.Set("copyOut", Napi::Function::New(env, CopyOut));
  exports.Set("fill", Napi::Function::New(env, Fill));
  exports.Set("move", Napi::Function::New(env, Move));
  exports.Set("shmCreate", Napi::Function::New(env, ShmCreate));
  exports.Set("shmOpen", Napi::Function::New(env, ShmOpen));
  exports.Set("shmUnlink", Napi::Function::New(env, ShmUnlink));
  exports.Set("fdSize", Napi::Function::New(env, FdSize));
  exports.Set("mapShared", Napi::Function::New(env, MapShared));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd));
  exports.Set("flushICache", Napi::Function::New(env, FlushICache));
  exports.Set("call", Napi::Function::New(env, Call));
  exports.Set("callWrapper", Napi::Function::New(env, CallWrapper));
  exports.Set("actionAddresses", Napi::Function::New(env, ActionAddresses));
  exports.Set("callMain", Napi::Function::New(env, CallMain));
  exports.Set("setSendBuffer", Napi::Function::New(env, SetSendBuffer));
  exports.Set("setAffinity", Napi::Function::New(env, SetAffinity));
  exports.Set("getAffinity", Napi::Function::New(env, GetAffinity));
  exports.Set("currentCpu", Napi::Function::New(env, CurrentCpu));
  exports.Set("dlopen", Napi::Function::New(env, DlOpen));
  exports.Set("dlsym", Napi::Function::New(env, DlSym));
  exports.Set("registerFrame", Napi::Function::New(env, RegisterFrame));
  exports.Set("deregisterFrame", Napi::Function::New(env, DeregisterFrame));
  exports.Set("callAsync", Napi::Function::New(env, CallAsync));
  exports.Set("dispatchStart", Napi::Function::New(env, DispatchStart));
  exports.Set("dispatchReply", Napi::Function::New(env, DispatchReply));
  exports.Set("dispatchStop", Napi::Function::New(env, DispatchStop));
  return exports;
}

}  // namespace

NODE_API_MODULE(jitmem_native, Init)
