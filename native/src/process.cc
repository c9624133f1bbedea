// Process and socket settings the bench and the executor need: CPU affinity, send buffers.

#include "jitmem.h"

#include <sched.h>
#include <sys/socket.h>

namespace jitmem {
namespace {

// Sets a socket's send buffer (SO_SNDBUF, or SO_SNDBUFFORCE past the sysctl cap when allowed)
// and returns the size the kernel granted. Bulk transfers over a Unix socket pay a wake-up of
// the peer per buffer-full; a larger buffer means fewer of them.
Napi::Value SetSendBuffer(const Napi::CallbackInfo &info) {
  uint64_t fd = U64(info, 0, "fd"), bytes = U64(info, 1, "bytes");
  JITMEM_ARGS_OK(info);
  int v = static_cast<int>(bytes > (1u << 30) ? (1u << 30) : bytes);
  if (setsockopt(static_cast<int>(fd), SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof v) != 0 &&
      setsockopt(static_cast<int>(fd), SOL_SOCKET, SO_SNDBUF, &v, sizeof v) != 0)
    return ThrowErrno(info.Env(), "setsockopt", "fd=" + std::to_string(fd) + ", SO_SNDBUF=" + std::to_string(v), errno);
  int got = 0;
  socklen_t len = sizeof got;
  if (getsockopt(static_cast<int>(fd), SOL_SOCKET, SO_SNDBUF, &got, &len) != 0)
    return ThrowErrno(info.Env(), "getsockopt", "fd=" + std::to_string(fd) + ", SO_SNDBUF", errno);
  return Napi::Number::New(info.Env(), got);
}

Napi::Value SetAffinity(const Napi::CallbackInfo &info) {
  uint64_t pid = U64(info, 0, "pid");
  JITMEM_ARGS_OK(info);
  if (info.Length() < 2 || !info[1].IsArray()) return ThrowType(info.Env(), "cpus must be an array of CPU numbers");
  Napi::Array cpus = info[1].As<Napi::Array>();
  cpu_set_t set;
  CPU_ZERO(&set);
  std::string list;
  for (uint32_t i = 0; i < cpus.Length(); i++) {
    int64_t c = I64(info, cpus.Get(i), "cpu");
    JITMEM_ARGS_OK(info);
    if (c < 0 || c >= CPU_SETSIZE) return ThrowType(info.Env(), "cpu " + std::to_string(c) + " out of range");
    CPU_SET(static_cast<int>(c), &set);
    list += (i ? "," : "") + std::to_string(c);
  }
  if (sched_setaffinity(static_cast<pid_t>(pid), sizeof set, &set) != 0)
    return ThrowErrno(info.Env(), "sched_setaffinity", "pid=" + std::to_string(pid) + ", cpus=[" + list + "]", errno);
  return info.Env().Undefined();
}

Napi::Value GetAffinity(const Napi::CallbackInfo &info) {
  uint64_t pid = U64(info, 0, "pid");
  JITMEM_ARGS_OK(info);
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(static_cast<pid_t>(pid), sizeof set, &set) != 0)
    return ThrowErrno(info.Env(), "sched_getaffinity", "pid=" + std::to_string(pid), errno);
  Napi::Array out = Napi::Array::New(info.Env());
  uint32_t n = 0;
  for (int c = 0; c < CPU_SETSIZE; c++)
    if (CPU_ISSET(c, &set)) out.Set(n++, Napi::Number::New(info.Env(), c));
  return out;
}

Napi::Value CurrentCpu(const Napi::CallbackInfo &info) {
  int c = sched_getcpu();
  if (c < 0) return ThrowErrno(info.Env(), "sched_getcpu", "", errno);
  return Napi::Number::New(info.Env(), c);
}

// The pid, uid and gid of the process at the other end of a connected Unix socket, as the
// kernel recorded them at connect time: the executor lets in only its own user.
Napi::Value PeerCredentials(const Napi::CallbackInfo &info) {
  uint64_t fd = U64(info, 0, "fd");
  JITMEM_ARGS_OK(info);
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(static_cast<int>(fd), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
    return ThrowErrno(info.Env(), "getsockopt", "fd=" + std::to_string(fd) + ", SO_PEERCRED", errno);
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("pid", Napi::Number::New(info.Env(), cred.pid));
  o.Set("uid", Napi::Number::New(info.Env(), cred.uid));
  o.Set("gid", Napi::Number::New(info.Env(), cred.gid));
  return o;
}

}  // namespace

void RegisterProcess(Napi::Env env, Napi::Object exports) {
  exports.Set("setSendBuffer", Napi::Function::New(env, SetSendBuffer));
  exports.Set("setAffinity", Napi::Function::New(env, SetAffinity));
  exports.Set("getAffinity", Napi::Function::New(env, GetAffinity));
  exports.Set("currentCpu", Napi::Function::New(env, CurrentCpu));
  exports.Set("peerCredentials", Napi::Function::New(env, PeerCredentials));
}

}  // namespace jitmem
