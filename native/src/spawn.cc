// Child processes started without copying this process's page tables: the ones the bench times.
//
// libuv (1.46, Node 20's) starts a child with fork(), which copies the page tables of every
// private mapping of the parent before the exec, and leaves each of its pages copy-on-write until
// the parent next writes it. So a process timed from a spawn carried the spawning process's size:
// from the bench's run pattern, executor start-up read 4.8-9.4 ms and llvm-jitlink's run of cray
// 25-30 ms at the median (five default runs), where the same spawns without it take about 1.6-2.3
// and 22 ms; from a Node process holding 500 MB, a spawn cost 27 ms more. posix_spawn (glibc:
// clone with CLONE_VM | CLONE_VFORK) shares the address space until the exec, about 0.5 ms
// whatever this process holds, as a shell starts a user's program.

#include "jitmem.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <vector>

extern char **environ;

namespace jitmem {
namespace {

// Closes what it holds unless released: the parent's and child's socket ends on a failed spawn.
struct FdList {
  std::vector<int> fds;
  ~FdList() {
    for (int fd : fds)
      if (fd >= 0) close(fd);
  }
};

struct SpawnSetup {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  SpawnSetup() {
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attr);
  }
  ~SpawnSetup() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
  }
};

// spawnChild(file, argv, pipes): each child fd in `pipes` gets one end of a Unix socket pair (as
// libuv's 'pipe' stdio does), the parent the other, returned in the same order; fds 0-2 not in
// `pipes` are /dev/null; every other fd of this process is closed in the child. Signal mask and
// dispositions start at their defaults (Node ignores SIGPIPE; the child must not inherit that).
Napi::Value SpawnChild(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string file = Str(info, 0, "file");
  JITMEM_ARGS_OK(info);
  if (info.Length() < 3 || !info[1].IsArray() || !info[2].IsArray())
    return ThrowType(env, "spawnChild(file, argv: string[], pipes: number[])");
  Napi::Array a = info[1].As<Napi::Array>();
  std::vector<std::string> args;
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value v = a.Get(i);
    if (!v.IsString()) return ThrowType(env, "argv must be an array of strings");
    args.push_back(v.As<Napi::String>().Utf8Value());
  }
  Napi::Array p = info[2].As<Napi::Array>();
  std::vector<int> targets;
  int highest = 2;
  for (uint32_t i = 0; i < p.Length(); i++) {
    int64_t fd = I64(info, p.Get(i), "pipe fd");
    JITMEM_ARGS_OK(info);
    if (fd < 0 || fd > 1023) return ThrowType(env, "pipe fd " + std::to_string(fd) + " out of range 0-1023");
    targets.push_back(static_cast<int>(fd));
    if (fd > highest) highest = static_cast<int>(fd);
  }

  FdList parentEnds, childEnds;
  for (size_t i = 0; i < targets.size(); i++) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
      return ThrowErrno(env, "socketpair", "AF_UNIX, SOCK_STREAM", errno);
    parentEnds.fds.push_back(sv[0]);
    // Above every target, so that no dup2 below overwrites a child end another one still reads.
    if (sv[1] <= highest) {
      int moved = fcntl(sv[1], F_DUPFD_CLOEXEC, highest + 1);
      int e = errno;
      close(sv[1]);
      if (moved < 0) return ThrowErrno(env, "fcntl", "F_DUPFD_CLOEXEC", e);
      sv[1] = moved;
    }
    childEnds.fds.push_back(sv[1]);
  }

  SpawnSetup s;
  int err = 0;
  for (int fd = 0; fd <= 2 && err == 0; fd++) {
    bool piped = false;
    for (int t : targets) piped = piped || t == fd;
    if (!piped) err = posix_spawn_file_actions_addopen(&s.actions, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0);
  }
  // dup2 clears close-on-exec on the target (glibc does so too when the two fds are equal).
  for (size_t i = 0; i < targets.size() && err == 0; i++)
    err = posix_spawn_file_actions_adddup2(&s.actions, childEnds.fds[i], targets[i]);
  if (err == 0) err = posix_spawn_file_actions_addclosefrom_np(&s.actions, highest + 1);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  if (err == 0) err = posix_spawnattr_setsigmask(&s.attr, &none);
  if (err == 0) err = posix_spawnattr_setsigdefault(&s.attr, &all);
  if (err == 0) err = posix_spawnattr_setflags(&s.attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  if (err != 0) return ThrowErrno(env, "posix_spawn_file_actions", file, err);

  std::vector<char *> argv;
  for (auto &arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  err = posix_spawn(&pid, file.c_str(), &s.actions, &s.attr, argv.data(), environ);
  if (err != 0) return ThrowErrno(env, "posix_spawn", file, err);

  Napi::Object out = Napi::Object::New(env);
  out.Set("pid", Napi::Number::New(env, pid));
  Napi::Array fds = Napi::Array::New(env, parentEnds.fds.size());
  for (size_t i = 0; i < parentEnds.fds.size(); i++) {
    fds.Set(static_cast<uint32_t>(i), Napi::Number::New(env, parentEnds.fds[i]));
    parentEnds.fds[i] = -1;  // the caller owns it now
  }
  out.Set("fds", fds);
  return out;
}

// Reaps a child of spawnChild on a pool thread (wait4), so that the event loop keeps reading its
// pipes meanwhile. libuv reaps only the pids of its own process handles, never these.
class WaitWorker : public Napi::AsyncWorker {
 public:
  WaitWorker(Napi::Env env, pid_t pid)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), pid_(pid) {}
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Execute() override {
    pid_t r;
    do r = wait4(pid_, &status_, 0, &usage_);
    while (r < 0 && errno == EINTR);
    if (r < 0) {
      err_ = errno;
      SetError("wait4");
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("exitStatus", WIFEXITED(status_) ? Napi::Number::New(env, WEXITSTATUS(status_)) : env.Null());
    o.Set("signal", WIFSIGNALED(status_) ? Napi::Number::New(env, WTERMSIG(status_)) : env.Null());
    auto ms = [](const timeval &t) { return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_usec) / 1e3; };
    o.Set("userMs", Napi::Number::New(env, ms(usage_.ru_utime)));
    o.Set("systemMs", Napi::Number::New(env, ms(usage_.ru_stime)));
    deferred_.Resolve(o);
  }
  void OnError(const Napi::Error &) override {
    Napi::Env env = Env();
    Napi::Error e = Napi::Error::New(env, "wait4(pid=" + std::to_string(pid_) + ") failed: " + ErrnoName(err_) +
                                              " (" + strerror(err_) + ")");
    e.Set("code", Napi::String::New(env, ErrnoName(err_)));
    e.Set("errno", Napi::Number::New(env, err_));
    e.Set("syscall", Napi::String::New(env, "wait4"));
    deferred_.Reject(e.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  pid_t pid_;
  int status_ = 0;
  int err_ = 0;
  struct rusage usage_ = {};
};

Napi::Value WaitChild(const Napi::CallbackInfo &info) {
  uint64_t pid = U64(info, 0, "pid");
  JITMEM_ARGS_OK(info);
  if (pid == 0 || pid > 0x7fffffff) return ThrowType(info.Env(), "pid " + std::to_string(pid) + " out of range");
  auto *w = new WaitWorker(info.Env(), static_cast<pid_t>(pid));
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

}  // namespace

void RegisterSpawn(Napi::Env env, Napi::Object exports) {
  exports.Set("spawnChild", Napi::Function::New(env, SpawnChild));
  exports.Set("waitChild", Napi::Function::New(env, WaitChild));
}

}  // namespace jitmem
