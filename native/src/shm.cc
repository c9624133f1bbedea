// POSIX shared memory and the file descriptors that carry it.

#include "jitmem.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace jitmem {
namespace {

Napi::Value ShmCreate(const Napi::CallbackInfo &info) {
  std::string name = Str(info, 0, "name");
  JITMEM_ARGS_OK(info);
  uint64_t size = U64(info, 1, "size");
  JITMEM_ARGS_OK(info);
  int fd = shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
  if (fd < 0) return ThrowErrno(info.Env(), "shm_open", "name=" + name + ", O_CREAT|O_EXCL", errno);
  if (ftruncate(fd, static_cast<off_t>(size)) != 0) {
    int err = errno;
    close(fd);
    shm_unlink(name.c_str());
    return ThrowErrno(info.Env(), "ftruncate", "name=" + name + ", size=" + std::to_string(size), err);
  }
  return Napi::Number::New(info.Env(), fd);
}

Napi::Value ShmOpen(const Napi::CallbackInfo &info) {
  std::string name = Str(info, 0, "name");
  JITMEM_ARGS_OK(info);
  int fd = shm_open(name.c_str(), O_RDWR, 0600);
  if (fd < 0) return ThrowErrno(info.Env(), "shm_open", "name=" + name, errno);
  return Napi::Number::New(info.Env(), fd);
}

Napi::Value ShmUnlink(const Napi::CallbackInfo &info) {
  std::string name = Str(info, 0, "name");
  JITMEM_ARGS_OK(info);
  if (shm_unlink(name.c_str()) != 0) return ThrowErrno(info.Env(), "shm_unlink", "name=" + name, errno);
  return info.Env().Undefined();
}

Napi::Value FdSize(const Napi::CallbackInfo &info) {
  uint64_t fd = U64(info, 0, "fd");
  JITMEM_ARGS_OK(info);
  struct stat st;
  if (fstat(static_cast<int>(fd), &st) != 0) return ThrowErrno(info.Env(), "fstat", "fd=" + std::to_string(fd), errno);
  return Napi::Number::New(info.Env(), static_cast<double>(st.st_size));
}

Napi::Value MapShared(const Napi::CallbackInfo &info) {
  uint64_t fd = U64(info, 0, "fd"), len = U64(info, 1, "length"), prot = U64(info, 2, "protection");
  JITMEM_ARGS_OK(info);
  void *p = mmap(nullptr, len, Prot(prot), MAP_SHARED, static_cast<int>(fd), 0);
  if (p == MAP_FAILED)
    return ThrowErrno(info.Env(), "mmap",
               "fd=" + std::to_string(fd) + ", length=" + std::to_string(len) + ", prot=" + std::to_string(prot) +
                   ", MAP_SHARED",
               errno);
  return Napi::Number::New(info.Env(), static_cast<double>(reinterpret_cast<uintptr_t>(p)));
}

Napi::Value CloseFd(const Napi::CallbackInfo &info) {
  uint64_t fd = U64(info, 0, "fd");
  JITMEM_ARGS_OK(info);
  if (close(static_cast<int>(fd)) != 0) return ThrowErrno(info.Env(), "close", "fd=" + std::to_string(fd), errno);
  return info.Env().Undefined();
}

}  // namespace

void RegisterShm(Napi::Env env, Napi::Object exports) {
  exports.Set("shmCreate", Napi::Function::New(env, ShmCreate));
  exports.Set("shmOpen", Napi::Function::New(env, ShmOpen));
  exports.Set("shmUnlink", Napi::Function::New(env, ShmUnlink));
  exports.Set("fdSize", Napi::Function::New(env, FdSize));
  exports.Set("mapShared", Napi::Function::New(env, MapShared));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd));
}

}  // namespace jitmem
