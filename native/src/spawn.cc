// Child processes started without copying this process's page tables: the processes the bench
// times, and the executor a session starts.
//
// libuv (1.46, Node 20's) starts a child with fork(), which copies the page tables of every
// private mapping of the parent before the exec, and leaves each of its pages copy-on-write until
// the parent next writes it. So a process timed from a spawn carried the spawning process's size:
// from the bench's run pattern, executor start-up read 4.8-9.4 ms and llvm-jitlink's run of cray
// 25-30 ms at the median (five default runs), 1.2-2.0 and 18-19 ms started as here; a session's
// spawn to Setup took 9.3 ms from a controller holding 200 MB, 1.7 ms as here. posix_spawn (glibc:
// clone with CLONE_VM | CLONE_VFORK) shares the address space until the exec, about 0.5 ms
// whatever this process holds, as a shell starts a user's program.

#include "jitmem.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mutex>
#include <thread>
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

// spawnChild(file, argv, pipes, inherit): each child fd in `pipes` gets one end of a Unix socket
// pair (as libuv's 'pipe' stdio does), the parent the other, returned in the same order; fds 0-2
// in `inherit` stay this process's, the others of 0-2 not in `pipes` are /dev/null. Of this
// process's other fds the child gets those without close-on-exec, as from child_process or a
// shell (Node opens none such; they are what this process was itself given). Signal mask and
// dispositions start at their defaults (Node ignores SIGPIPE; the child must not inherit that).
Napi::Value SpawnChild(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string file = Str(info, 0, "file");
  JITMEM_ARGS_OK(info);
  if (info.Length() < 4 || !info[1].IsArray() || !info[2].IsArray() || !info[3].IsArray())
    return ThrowType(env, "spawnChild(file, argv: string[], pipes: number[], inherit: number[])");
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

  bool inherited[3] = {false, false, false};
  Napi::Array inh = info[3].As<Napi::Array>();
  for (uint32_t i = 0; i < inh.Length(); i++) {
    int64_t fd = I64(info, inh.Get(i), "inherited fd");
    JITMEM_ARGS_OK(info);
    if (fd < 0 || fd > 2) return ThrowType(env, "inherited fd " + std::to_string(fd) + " is not 0, 1 or 2");
    inherited[fd] = true;
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
    if (!piped && !inherited[fd]) err = posix_spawn_file_actions_addopen(&s.actions, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0);
  }
  // An inherited fd is dup2'd onto itself, which clears its close-on-exec (libuv sets that on the
  // stdio it reopens), and made blocking, as libuv makes a child's inherited stdio: the program's
  // stdio expects that, and the open file description is shared, so the parent's is blocking too,
  // as it is after child_process's 'inherit'.
  for (int fd = 0; fd <= 2 && err == 0; fd++) {
    if (!inherited[fd]) continue;
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0 && (flags & O_NONBLOCK)) fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    err = posix_spawn_file_actions_adddup2(&s.actions, fd, fd);
  }
  // dup2 clears close-on-exec on the target (glibc does so too when the two fds are equal).
  for (size_t i = 0; i < targets.size() && err == 0; i++)
    err = posix_spawn_file_actions_adddup2(&s.actions, childEnds.fds[i], targets[i]);
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

// Reaping. libuv reaps only the pids of its own process handles, never these. One thread of this
// addon waits for every child at once (epoll over their pidfds) and reaps each as it ends; the
// result comes back to the main thread through a thread-safe function. A wait per child on
// libuv's pool would hold one of its four threads for the child's whole life: an executor session
// lasts as long as its controller wants, and with four of them nothing else could use the pool.

struct PendingChild {
  pid_t pid;
  int pidfd;
  Napi::Promise::Deferred deferred;
  int status = 0;
  int err = 0;  // errno of a failed waitpid
};

void ResolveChild(Napi::Env env, Napi::Function, void *, PendingChild *c);
using ReapedCall = Napi::TypedThreadSafeFunction<void, PendingChild, ResolveChild>;

struct Reaper {
  std::mutex m;
  int epfd = -1;
  ReapedCall reaped;
  bool started = false;
  size_t pending = 0;  // main thread only: children waited for and not yet resolved
};
Reaper gReaper;

void ReaperLoop() {
  for (;;) {
    epoll_event events[16];
    int n = epoll_wait(gReaper.epfd, events, 16, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    for (int i = 0; i < n; i++) {
      auto *c = static_cast<PendingChild *>(events[i].data.ptr);
      pid_t r;
      do r = waitpid(c->pid, &c->status, WNOHANG);
      while (r < 0 && errno == EINTR);
      if (r == 0) {  // not ended yet (a pidfd is readable only once it has): wait on
        epoll_event ev = {};
        ev.events = EPOLLIN | EPOLLONESHOT;
        ev.data.ptr = c;
        epoll_ctl(gReaper.epfd, EPOLL_CTL_MOD, c->pidfd, &ev);
        continue;
      }
      if (r < 0) c->err = errno;
      epoll_ctl(gReaper.epfd, EPOLL_CTL_DEL, c->pidfd, nullptr);
      close(c->pidfd);
      c->pidfd = -1;
      gReaper.reaped.BlockingCall(c);
    }
  }
}

void ResolveChild(Napi::Env env, Napi::Function, void *, PendingChild *c) {
  if (env != nullptr) {
    if (c->err != 0) {
      Napi::Error e = Napi::Error::New(env, "waitpid(pid=" + std::to_string(c->pid) + ") failed: " +
                                                ErrnoName(c->err) + " (" + strerror(c->err) + ")");
      e.Set("code", Napi::String::New(env, ErrnoName(c->err)));
      e.Set("syscall", Napi::String::New(env, "waitpid"));
      c->deferred.Reject(e.Value());
    } else {
      Napi::Object o = Napi::Object::New(env);
      o.Set("exitStatus", WIFEXITED(c->status) ? Napi::Number::New(env, WEXITSTATUS(c->status)) : env.Null());
      o.Set("signal", WIFSIGNALED(c->status) ? Napi::Number::New(env, WTERMSIG(c->status)) : env.Null());
      c->deferred.Resolve(o);
    }
    // As a child_process handle does, a child not yet ended keeps the event loop alive.
    if (--gReaper.pending == 0) gReaper.reaped.Unref(env);
  }
  delete c;
}

// waitChild(pid): a promise of { exitStatus, signal }, settled once the child has ended and been reaped.
Napi::Value WaitChild(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  uint64_t pid = U64(info, 0, "pid");
  JITMEM_ARGS_OK(info);
  if (pid == 0 || pid > 0x7fffffff) return ThrowType(env, "pid " + std::to_string(pid) + " out of range");
  std::lock_guard<std::mutex> lock(gReaper.m);
  if (!gReaper.started) {
    gReaper.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (gReaper.epfd < 0) return ThrowErrno(env, "epoll_create1", "EPOLL_CLOEXEC", errno);
    gReaper.reaped = ReapedCall::New(env, "jitmem_reaper", 0, 1);
    gReaper.reaped.Unref(env);
    std::thread(ReaperLoop).detach();
    gReaper.started = true;
  }
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, static_cast<pid_t>(pid), 0));
  if (pidfd < 0) return ThrowErrno(env, "pidfd_open", "pid=" + std::to_string(pid), errno);
  auto *c = new PendingChild{static_cast<pid_t>(pid), pidfd, Napi::Promise::Deferred::New(env)};
  Napi::Promise promise = c->deferred.Promise();
  if (gReaper.pending++ == 0) gReaper.reaped.Ref(env);
  epoll_event ev = {};
  ev.events = EPOLLIN | EPOLLONESHOT;
  ev.data.ptr = c;
  if (epoll_ctl(gReaper.epfd, EPOLL_CTL_ADD, pidfd, &ev) != 0) {
    int e = errno;
    close(pidfd);
    delete c;
    if (--gReaper.pending == 0) gReaper.reaped.Unref(env);
    return ThrowErrno(env, "epoll_ctl", "EPOLL_CTL_ADD pidfd of pid " + std::to_string(pid), e);
  }
  return promise;
}

}  // namespace

void RegisterSpawn(Napi::Env env, Napi::Object exports) {
  exports.Set("spawnChild", Napi::Function::New(env, SpawnChild));
  exports.Set("waitChild", Napi::Function::New(env, WaitChild));
}

}  // namespace jitmem
