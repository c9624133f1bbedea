// One session: Setup, then frames in, results out (docs/wire-protocol.md §1, §3). The main thread
// reads frames and answers every call whose handler does not run JIT'd code at once, in order.
// Run-as calls run their code on a thread of their own (as LLVM's executor does), which sends its
// Result when the code returns; meanwhile nothing that could pull memory from under the code
// (deinitialize, release, patchCode) is done: those calls are refused with ERR_CODE_RUNNING. JIT'd
// code on such a thread may call its controller through jitmem_dispatch, which sends a CallWrapper
// and waits for the Result the main thread reads.
//
// Anything the protocol does not allow ends the session with a message on stderr (exit 1);
// a request that decodes but cannot be served fails alone, inside its SPSError/SPSExpected.

#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <linux/membarrier.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>

#include "executor.h"
#include "runtime.h"

extern char **environ;

namespace jitmem {
namespace {

constexpr size_t kHeader = 32;
constexpr uint64_t kMaxChecksumBytes = 1ull << 30;
enum OpCode : uint64_t { kSetup = 0, kHangup = 1, kResult = 2, kCallWrapper = 3 };

// The service instances' names (their tokens are checked by identity of these pointers, see
// Session::instanceToken).
const char *const kMemMgrInstance = "__llvm_orc_SimpleExecutorMemoryManager_Instance";
const char *const kShmInstance = "__llvm_orc_ExecutorSharedMemoryMapperService_Instance";
const char *const kDylibInstance = "__llvm_orc_SimpleExecutorDylibManager_Instance";

const char *const kTriple =
#if defined(__x86_64__)
    "x86_64-pc-linux-gnu";
#elif defined(__aarch64__)
    "aarch64-pc-linux-gnu";
#else
    "unknown-pc-linux-gnu";
#endif

enum class Service {
  MemReserve, MemInitialize, MemDeinitialize, MemRelease,
  ShmReserve, ShmInitialize, ShmDeinitialize, ShmRelease,
  DylibOpen, DylibResolve,
  Write8, Write16, Write32, Write64, WritePtr, WriteBuffers,
  Read8, Read16, Read32, Read64, ReadPtr, ReadBuffers, ReadStrings,
  RunAsMain, RunAsVoid, RunAsInt,
  RunProgram, DylibClose, ReserveWindow, Checksum, PatchCode, CodeBarrier, Noop, CostCounters, UnwindProbe,
};

struct DispatchWait {
  std::mutex m;
  std::condition_variable cv;
  bool done = false;
  std::vector<uint8_t> result;
  std::string error;
};

uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

// Threads of the executor itself (the session's and those running code for a call): any other
// thread of this process belongs to the program.
// Never destroyed: a code thread that has sent its Result still leaves this set while the main
// thread may already be in exit(), running static destructors.
std::mutex &gOwnMutex = *new std::mutex;
std::set<pid_t> &gOwnThreads = *new std::set<pid_t>;
// Threads of ours created but not yet in gOwnThreads: until they are, no thread is stopped.
std::atomic<int> gStartingThreads{0};

pid_t Tid() { return static_cast<pid_t>(syscall(SYS_gettid)); }

void OwnThread(bool add) {
  std::lock_guard<std::mutex> lock(gOwnMutex);
  if (add) gOwnThreads.insert(Tid());
  else gOwnThreads.erase(Tid());
}

// The program's threads, ended as exit() ends them natively once its main has returned: each
// leaves by the raw exit system call (no unwinding, no handlers), after which no thread runs
// its code and its memory may go. A thread that blocks the signal is left; it is said on stderr.
void OnStopThread(int) { syscall(SYS_exit, 0); }

void StopProgramThreads() {
  // The standard streams' locks are taken first (as fork() takes them), so that no stopped
  // thread leaves one held for the executor and the next program; a stream a thread keeps
  // locked (a read on stdin that waits) is left after a while.
  FILE *streams[] = {stdout, stderr, stdin};
  bool held[3] = {false, false, false};
  for (int i = 0; i < 3; i++)
    for (int tries = 0; tries < 50 && !held[i]; tries++) {
      held[i] = ftrylockfile(streams[i]) == 0;
      if (!held[i]) usleep(1000);
    }
  struct Unlock {
    FILE **streams;
    bool *held;
    ~Unlock() {
      for (int i = 0; i < 3; i++)
        if (held[i]) funlockfile(streams[i]);
    }
  } unlock{streams, held};
  const int sig = SIGRTMIN + 3;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = OnStopThread;
  sigemptyset(&sa.sa_mask);
  sigaction(sig, &sa, nullptr);
  for (int round = 0; round < 200; round++) {
    if (gStartingThreads.load() > 0) {
      usleep(1000);
      continue;
    }
    std::vector<pid_t> others;
    if (DIR *d = opendir("/proc/self/task")) {
      while (dirent *e = readdir(d)) {
        pid_t tid = static_cast<pid_t>(atoi(e->d_name));
        if (tid <= 0) continue;
        std::lock_guard<std::mutex> lock(gOwnMutex);
        if (!gOwnThreads.count(tid)) others.push_back(tid);
      }
      closedir(d);
    }
    if (others.empty()) return;
    if (round % 20 == 0)
      for (pid_t tid : others) syscall(SYS_tgkill, getpid(), tid, sig);
    usleep(1000);
  }
  static const char kStuck[] = "jitmem executor: a thread of the program outlived its main and does not take the stop signal\n";
  ssize_t ignored = write(2, kStuck, sizeof kStuck - 1);  // stderr's lock is ours just now
  (void)ignored;
}

class Session;
// The session being served: jitmem_dispatch and the fork handler find it here.
std::atomic<Session *> gSession{nullptr};
pthread_t gMainThread;

// ---- Shared-memory names, for the signal handler ----------------------------------------------
// A fixed table a signal handler may walk: every name this process created and has not unlinked.
constexpr int kNameSlots = 1024;
char gNames[kNameSlots][96];
std::atomic<bool> gNameUsed[kNameSlots];

}  // namespace

void TrackShmName(const std::string &name, bool add) {
  for (int i = 0; i < kNameSlots; i++) {
    if (add) {
      bool expected = false;
      if (!gNameUsed[i].load() && name.size() < sizeof gNames[i]) {
        memcpy(gNames[i], name.c_str(), name.size() + 1);
        if (gNameUsed[i].compare_exchange_strong(expected, true)) return;
      }
    } else if (gNameUsed[i].load() && name == gNames[i]) {
      gNameUsed[i].store(false);
      return;
    }
  }
}

// Async-signal-safe: unlinks every tracked name.
void UnlinkTrackedNames() {
  for (int i = 0; i < kNameSlots; i++) {
    if (!gNameUsed[i].load()) continue;
    char path[128] = "/dev/shm";
    size_t n = strlen(gNames[i]);
    if (n + 9 < sizeof path) {
      memcpy(path + 8, gNames[i], n + 1);
      unlink(path);
    }
    gNameUsed[i].store(false);
  }
}

namespace {

class Session {
 public:
  Session(int in, int out, const SessionOptions &options)
      : in_(in), out_(out), options_(options), space_(static_cast<uint64_t>(sysconf(_SC_PAGESIZE))), frames_(space_), actions_(space_, frames_),
        mem_(space_, actions_, options.shmPrefix) {
    struct stat st;
    outIsSocket_ = fstat(out, &st) == 0 && S_ISSOCK(st.st_mode);
    void *p = mmap(nullptr, space_.pageSize, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    tokenPage_ = p == MAP_FAILED ? 0x1000 : reinterpret_cast<uintptr_t>(p);
    registerServices();
  }

  int serve();
  void shutdown();
  // Called in a forked child of the program: the child's memory must be its own.
  void privatizeForChild();
  void closeChannel();
  bool dispatch(uint64_t tag, const char *data, size_t size, DispatchWait &wait);
  int runningCode() const { return running_.load(); }
  const Err &fatalError() const { return fatal_; }

 private:
  uint64_t token(const std::string &name) {
    auto it = tokens_.find(name);
    if (it != tokens_.end()) return it->second;
    uint64_t t = tokenPage_ + 16 * tokenOrder_.size();
    tokens_[name] = t;
    tokenOrder_.push_back(name);
    return t;
  }
  void on(const std::string &name, Service s, bool jitmem = false) {
    uint64_t t = token(name);
    services_[t] = s;
    if (jitmem) jitmemTags_.insert(t);
  }
  void registerServices();
  bool sendFrame(uint64_t opcode, uint64_t seq, uint64_t tag, std::vector<uint8_t> &frame);
  bool writeAll(const uint8_t *p, size_t left);  // under writeMutex_
  void answer(uint64_t seq, std::vector<uint8_t> &frame);
  void flushAnswers();
  void sendSetup();
  bool fatal(const char *code, const std::string &message) { return fatal_.fail(code, message); }
  bool readSome(uint8_t *dst, size_t n, size_t &got, bool &eof);
  // Returns false when the session is over (fatal_ says why, or clean EOF/hangup).
  bool handleCall(uint64_t seq, uint64_t tag, const uint8_t *payload, size_t size);
  // A call read whole: its payload stays where it was read until the next read.
  struct CallIn {
    uint64_t seq;
    const uint8_t *payload;
    size_t size;
  };
  void takeSameCalls(uint64_t tag, std::vector<CallIn> &calls);
  bool decodeInitialize(Service s, Reader &r, InitializeJob &j);
  bool handleInitializes(Service s, const std::vector<CallIn> &calls);
  uint8_t *payloadSpace(size_t size);
  bool handle(Service s, uint64_t seq, Reader &r, Writer &w);
  bool checkInstance(const char *name, uint64_t addr, Err &e) {
    if (addr != instanceToken(name)) return e.fail("ERR_UNKNOWN_INSTANCE", Hex(addr) + " is not the address of " + name);
    return true;
  }
  // Every memory call names its service's instance: the three tokens are kept as numbers, so
  // that checking one is not a string built and looked up in the token map per call.
  uint64_t instanceToken(const char *name) {
    if (name == kMemMgrInstance) return memMgrInstance_;
    if (name == kShmInstance) return shmInstance_;
    if (name == kDylibInstance) return dylibInstance_;
    auto it = tokens_.find(name);
    return it == tokens_.end() ? 0 : it->second;
  }
  bool requireNoCodeRunning(const char *what, Err &e) {
    int n = running_.load();
    if (n > 0)
      return e.fail("ERR_CODE_RUNNING", std::string(what) + " refused: " + std::to_string(n) +
                                            " run-as call(s) are still executing JIT'd code, which may use this memory; retry once they have returned");
    return true;
  }
  bool requireCallable(uint64_t fn, const char *what, Err &e) {
    if (resolved_.count(fn)) return true;
    return space_.requireAccess(fn, 1, PROT_X_, std::string(what) + ": function", e) != nullptr;
  }
  bool segmentAt(uint64_t addr, uint64_t size, const char *what, uint64_t &segStart, int &prot, Err &e);
  bool patchCode(Reader &r, Err &e);
  void deallocationAnswered();
  bool readFinalizeRequest(Reader &r, bool withContent, FinalizeRequest &fr);
  void startCode(Service s, uint64_t seq, uint64_t fn, int32_t arg, std::vector<std::string> args, ProgramRun *run);
  static void *CodeThread(void *arg);

  int in_, out_;
  SessionOptions options_;
  AddressSpace space_;
  EHFrameRegistry frames_;
  ActionSite actions_;
  MemoryServices mem_;
  uint64_t tokenPage_;
  bool outIsSocket_ = false;
  bool channelClosed_ = false;  // under writeMutex_
  std::map<std::string, uint64_t> tokens_;
  uint64_t memMgrInstance_ = 0, shmInstance_ = 0, dylibInstance_ = 0;
  std::vector<std::string> tokenOrder_;
  std::map<uint64_t, Service> services_;
  std::set<uint64_t> jitmemTags_;
  std::set<uint64_t> dylibHandles_;
  std::set<uint64_t> resolved_;
  Err fatal_;
  bool shutDown_ = false;
  std::atomic<bool> mainReturned_{false};
  bool jitmemController_ = false;
  uint64_t idleDeadlineNs_ = 0;
  std::atomic<int> running_{0};
  std::atomic<bool> open_{true};

  std::mutex writeMutex_;
  std::atomic<uint64_t> bytesSent_{0}, bytesReceived_{0}, callsHandled_{0}, handlerNs_{0}, writes_{0};

  std::mutex dispatchMutex_;
  uint64_t nextSeq_ = 1;
  std::map<uint64_t, DispatchWait *> waits_;

  // Read buffer.
  std::vector<uint8_t> rbuf_ = std::vector<uint8_t>(1 << 16);
  size_t rpos_ = 0, rend_ = 0;
  // Payloads are read into one buffer kept from frame to frame (up to kKeptPayload), neither
  // zeroed nor given back: an RPC-copy finalize of CPython is 6.5 MB, and a buffer made per
  // frame was zero-filled before the read wrote over it. Larger payloads get one of their own.
  static constexpr size_t kKeptPayload = size_t(64) << 20;
  std::unique_ptr<uint8_t[]> payload_;
  size_t payloadCap_ = 0;
  std::unique_ptr<uint8_t[]> oversized_;
  // Results the main thread has answered and not yet written (answer()): they leave together
  // before it waits for input, instead of one write each.
  std::vector<uint8_t> answers_;
};

struct CodeJob {
  Session *session;
  Service service;
  uint64_t seq, fn;
  int32_t arg;
  std::vector<std::string> args;
  ProgramRun *run;
};

void Session::registerServices() {
  // Token order: instances first, then each service (the Setup map lists them all).
  token("__llvm_orc_SimpleRemoteEPC_dispatch_ctx");
  memMgrInstance_ = token(kMemMgrInstance);
  shmInstance_ = token(kShmInstance);
  dylibInstance_ = token(kDylibInstance);
  actions_.ignored.insert(token("llvm_orc_registerJITLoaderGDBAllocAction"));
  on("__llvm_orc_SimpleExecutorMemoryManager_reserve_wrapper", Service::MemReserve);
  on("__llvm_orc_SimpleExecutorMemoryManager_initialize_wrapper", Service::MemInitialize);
  on("__llvm_orc_SimpleExecutorMemoryManager_deinitialize_wrapper", Service::MemDeinitialize);
  on("__llvm_orc_SimpleExecutorMemoryManager_release_wrapper", Service::MemRelease);
  on("__llvm_orc_ExecutorSharedMemoryMapperService_Reserve", Service::ShmReserve);
  on("__llvm_orc_ExecutorSharedMemoryMapperService_Initialize", Service::ShmInitialize);
  on("__llvm_orc_ExecutorSharedMemoryMapperService_Deinitialize", Service::ShmDeinitialize);
  on("__llvm_orc_ExecutorSharedMemoryMapperService_Release", Service::ShmRelease);
  on("__llvm_orc_SimpleExecutorDylibManager_open_wrapper", Service::DylibOpen);
  on("__llvm_orc_SimpleExecutorDylibManager_resolve_wrapper", Service::DylibResolve);
  on("__llvm_orc_bootstrap_mem_write_uint8s_wrapper", Service::Write8);
  on("__llvm_orc_bootstrap_mem_read_uint8s_wrapper", Service::Read8);
  on("__llvm_orc_bootstrap_mem_write_uint16s_wrapper", Service::Write16);
  on("__llvm_orc_bootstrap_mem_read_uint16s_wrapper", Service::Read16);
  on("__llvm_orc_bootstrap_mem_write_uint32s_wrapper", Service::Write32);
  on("__llvm_orc_bootstrap_mem_read_uint32s_wrapper", Service::Read32);
  on("__llvm_orc_bootstrap_mem_write_uint64s_wrapper", Service::Write64);
  on("__llvm_orc_bootstrap_mem_read_uint64s_wrapper", Service::Read64);
  on("__llvm_orc_bootstrap_mem_write_pointers_wrapper", Service::WritePtr);
  on("__llvm_orc_bootstrap_mem_read_pointers_wrapper", Service::ReadPtr);
  on("__llvm_orc_bootstrap_mem_write_buffers_wrapper", Service::WriteBuffers);
  on("__llvm_orc_bootstrap_mem_read_buffers_wrapper", Service::ReadBuffers);
  on("__llvm_orc_bootstrap_mem_read_strings_wrapper", Service::ReadStrings);
  on("__llvm_orc_bootstrap_run_as_main_wrapper", Service::RunAsMain);
  on("__llvm_orc_bootstrap_run_as_void_function_wrapper", Service::RunAsVoid);
  on("__llvm_orc_bootstrap_run_as_int_function_wrapper", Service::RunAsInt);
  on("jitmem_run_program_wrapper", Service::RunProgram, true);
  on("jitmem_dylib_close_wrapper", Service::DylibClose, true);
  on("jitmem_set_reserve_window_wrapper", Service::ReserveWindow, true);
  on("jitmem_checksum_wrapper", Service::Checksum, true);
  on("jitmem_patch_code_wrapper", Service::PatchCode, true);
  on("jitmem_code_barrier_wrapper", Service::CodeBarrier, true);
  on("jitmem_noop_wrapper", Service::Noop, true);
  on("jitmem_cost_counters_wrapper", Service::CostCounters, true);
  on("jitmem_unwind_probe_wrapper", Service::UnwindProbe, true);
}


// Writes one frame whose payload follows 32 bytes of headroom in `frame`. Results of several
// threads never interleave. A peer that is gone makes the write fail, which ends nothing here:
// the read side sees the end.
bool Session::sendFrame(uint64_t opcode, uint64_t seq, uint64_t tag, std::vector<uint8_t> &frame) {
  uint64_t header[4] = {frame.size(), opcode, seq, tag};
  memcpy(frame.data(), header, kHeader);
  std::lock_guard<std::mutex> lock(writeMutex_);
  return writeAll(frame.data(), frame.size());
}

// Answers that fit are kept (up to kAnswersKept bytes) until the calls read with them are
// answered: a controller that pipelines calls (a program's 176 finalizes of CPython) gets their
// results in one write, and is woken once, where each took a write of its own and could wake it.
// A lone call's answer leaves at once, with no system call more.
constexpr size_t kAnswersKept = 64 * 1024;

void Session::answer(uint64_t seq, std::vector<uint8_t> &frame) {
  if (frame.size() > kAnswersKept) {
    flushAnswers();
    sendFrame(kResult, seq, 0, frame);
    return;
  }
  uint64_t header[4] = {frame.size(), kResult, seq, 0};
  memcpy(frame.data(), header, kHeader);
  answers_.insert(answers_.end(), frame.begin(), frame.end());
  if (answers_.size() >= kAnswersKept) flushAnswers();
}

void Session::flushAnswers() {
  if (answers_.empty()) return;
  {
    std::lock_guard<std::mutex> lock(writeMutex_);
    writeAll(answers_.data(), answers_.size());
  }
  answers_.clear();
}

bool Session::writeAll(const uint8_t *p, size_t left) {
  if (channelClosed_) return false;  // its descriptors may name other files by now
  bytesSent_ += left;
  writes_++;
  // The program's SIGPIPE keeps its default action: our own writes must not raise it.
  sigset_t pipe, old;
  sigemptyset(&pipe);
  sigaddset(&pipe, SIGPIPE);
  if (!outIsSocket_) pthread_sigmask(SIG_BLOCK, &pipe, &old);
  bool ok = true;
  while (left > 0) {
    ssize_t n = outIsSocket_ ? send(out_, p, left, MSG_NOSIGNAL) : write(out_, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        pollfd pfd{out_, POLLOUT, 0};
        poll(&pfd, 1, -1);
        continue;
      }
      ok = false;
      break;
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  if (!outIsSocket_) {
    if (!ok && errno == EPIPE) {
      timespec zero{0, 0};
      sigtimedwait(&pipe, nullptr, &zero);
    }
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
  }
  return ok;
}

void Session::sendSetup() {
  Writer w;
  w.string(kTriple).u64(space_.pageSize);
  w.u64(0);  // bootstrap map: empty
  std::vector<std::pair<std::string, uint64_t>> symbols;
  for (const std::string &n : tokenOrder_) symbols.emplace_back(n, tokens_[n]);
  auto fnAddr = [](void *f) { return static_cast<uint64_t>(reinterpret_cast<uintptr_t>(f)); };
  symbols.emplace_back("llvm_orc_registerEHFrameAllocAction", fnAddr(reinterpret_cast<void *>(&jitmem_register_eh_frame_action)));
  symbols.emplace_back("llvm_orc_deregisterEHFrameAllocAction", fnAddr(reinterpret_cast<void *>(&jitmem_deregister_eh_frame_action)));
  symbols.emplace_back("jitmem_trace_action", fnAddr(reinterpret_cast<void *>(&jitmem_trace_action)));
  symbols.emplace_back("jitmem_fail_action", fnAddr(reinterpret_cast<void *>(&jitmem_fail_action)));
  symbols.emplace_back("__llvm_orc_SimpleRemoteEPC_dispatch_fn", fnAddr(DispatchFunctionAddress()));
  symbols.emplace_back("jitmem_program_exit", fnAddr(reinterpret_cast<void *>(&jitmem_program_exit)));
  symbols.emplace_back("jitmem_program_atexit", fnAddr(reinterpret_cast<void *>(&jitmem_program_atexit)));
  symbols.emplace_back("jitmem_program_cxa_atexit", fnAddr(reinterpret_cast<void *>(&jitmem_program_cxa_atexit)));
  symbols.emplace_back("jitmem_program_dlopen", fnAddr(reinterpret_cast<void *>(&jitmem_program_dlopen)));
  symbols.emplace_back("jitmem_program_dlclose", fnAddr(reinterpret_cast<void *>(&jitmem_program_dlclose)));
  w.u64(symbols.size());
  for (auto &kv : symbols) w.string(kv.first).u64(kv.second);
  sendFrame(kSetup, 0, 0, w.buffer());
}

// Reads what is there (at least one byte), waiting; honours the idle deadline.
bool Session::readSome(uint8_t *dst, size_t n, size_t &got, bool &eof) {
  got = 0;
  eof = false;
  for (;;) {
    // Kept answers leave before anything could wait for input (the controller may be waiting
    // for them): here only when the rest of a frame is still to come.
    if (!answers_.empty()) {
      pollfd ready{in_, POLLIN, 0};
      if (poll(&ready, 1, 0) != 1) flushAnswers();
    }
    if (idleDeadlineNs_ != 0) {
      uint64_t now = NowNs();
      if (now >= idleDeadlineNs_) {
        if (running_.load() == 0) {
          eof = true;  // closed for being idle (docs/wire-protocol.md §3.2)
          return true;
        }
        idleDeadlineNs_ = 0;
      } else {
        pollfd pfd{in_, POLLIN, 0};
        int r = poll(&pfd, 1, static_cast<int>((idleDeadlineNs_ - now) / 1000000 + 1));
        if (r == 0) continue;
      }
    }
    ssize_t r = read(in_, dst, n);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        pollfd pfd{in_, POLLIN, 0};
        poll(&pfd, 1, -1);
        continue;
      }
      return fatal("ERR_STREAM", std::string("the stream to the controller failed: ") + strerror(errno));
    }
    if (r == 0) {
      eof = true;
      return true;
    }
    got = static_cast<size_t>(r);
    bytesReceived_ += got;
    return true;
  }
}

int Session::serve() {
  gSession.store(this);
  gMainThread = pthread_self();
  OwnThread(true);
  sendSetup();
  bool closedByIdle = false;
  for (;;) {
    // The header.
    uint8_t header[kHeader];
    size_t have = 0;
    bool eof = false;
    while (have < kHeader) {
      if (rpos_ < rend_) {
        size_t take = std::min(kHeader - have, rend_ - rpos_);
        memcpy(header + have, rbuf_.data() + rpos_, take);
        rpos_ += take;
        have += take;
        continue;
      }
      size_t got;
      if (!readSome(rbuf_.data(), rbuf_.size(), got, eof)) break;
      if (eof) break;
      rpos_ = 0;
      rend_ = got;
    }
    if (fatal_.set) break;
    if (eof) {
      if (have > 0)
        fatal("ERR_UNEXPECTED_EOF", "unexpected end-of-file from the controller in the middle of a frame (" + std::to_string(have) + " bytes of an incomplete frame were received)");
      else if (idleDeadlineNs_ != 0)
        closedByIdle = true;
      break;
    }
    uint64_t size, opcode, seq, tag;
    memcpy(&size, header, 8);
    memcpy(&opcode, header + 8, 8);
    memcpy(&seq, header + 16, 8);
    memcpy(&tag, header + 24, 8);
    if (size > options_.maxFrameSize) {
      fatal("ERR_FRAME_TOO_LARGE", "frame size " + (size > kMaxSafe ? Hex(size) : std::to_string(size)) + " is above the limit of " + std::to_string(options_.maxFrameSize) + " bytes");
      break;
    }
    if (size < kHeader) {
      fatal("ERR_FRAME_TOO_SMALL", "frame size " + std::to_string(size) + " is below the 32-byte header it must include");
      break;
    }
    if (opcode > kCallWrapper) {
      fatal("ERR_UNKNOWN_OPCODE", "unknown opcode " + (opcode > kMaxSafe ? Hex(opcode) : std::to_string(opcode)) +
                                      "; expected 0 (Setup), 1 (Hangup), 2 (Result) or 3 (CallWrapper)");
      break;
    }
    if (seq > kMaxSafe) {
      fatal("ERR_BAD_SEQUENCE_NUMBER", "sequence number " + Hex(seq) + " is beyond 2^53");
      break;
    }
    if (tag > kMaxSafe) {
      fatal("ERR_UNKNOWN_TAG", "tag address " + Hex(tag) + " is beyond 2^53 and names nothing");
      break;
    }
    // The payload.
    const size_t payloadSize = size - kHeader;
    uint8_t *payload = payloadSpace(payloadSize);
    if (!payload) {
      fatal("ERR_OUT_OF_MEMORY", "no memory for a frame payload of " + std::to_string(payloadSize) + " bytes");
      break;
    }
    size_t filled = 0;
    while (filled < payloadSize) {
      if (rpos_ < rend_) {
        size_t take = std::min(payloadSize - filled, rend_ - rpos_);
        memcpy(payload + filled, rbuf_.data() + rpos_, take);
        rpos_ += take;
        filled += take;
        continue;
      }
      size_t got;
      // Large payloads go straight into their buffer.
      if (payloadSize - filled >= rbuf_.size()) {
        if (!readSome(payload + filled, payloadSize - filled, got, eof) || eof) break;
        filled += got;
        continue;
      }
      if (!readSome(rbuf_.data(), rbuf_.size(), got, eof) || eof) break;
      rpos_ = 0;
      rend_ = got;
    }
    if (fatal_.set) break;
    if (eof) {
      fatal("ERR_UNEXPECTED_EOF", "unexpected end-of-file from the controller in the middle of a frame (" + std::to_string(filled) + " bytes of an incomplete frame were received)");
      break;
    }
    if (opcode == kSetup) {
      fatal("ERR_UNEXPECTED_SETUP", "unexpected Setup opcode from the controller: only an executor sends Setup");
      break;
    }
    if (opcode == kHangup) break;
    if (opcode == kResult) {
      if (tag != 0) {
        fatal("ERR_UNEXPECTED_TAG", "unexpected TagAddr " + Hex(tag) + " in Result message for sequence number " + std::to_string(seq) + "; a Result's tag must be 0");
        break;
      }
      DispatchWait *w = nullptr;
      {
        std::lock_guard<std::mutex> lock(dispatchMutex_);
        auto it = waits_.find(seq);
        if (it != waits_.end()) {
          w = it->second;
          waits_.erase(it);
        }
      }
      if (!w) {
        fatal("ERR_UNKNOWN_SEQUENCE_NUMBER", "no call for sequence number " + std::to_string(seq) + ": the controller answered a call that was never made or was already answered");
        break;
      }
      std::lock_guard<std::mutex> lock(w->m);
      w->result.assign(payload, payload + payloadSize);
      w->done = true;
      w->cv.notify_one();
      continue;
    }
    // Initializes pipelined by the controller (a program's graphs) are read together: they are
    // handled together, their protections set with the fewest calls across them. Every
    // initialize goes that way, alone or not.
    auto service = services_.find(tag);
    bool initialize = service != services_.end() && (service->second == Service::MemInitialize || service->second == Service::ShmInitialize);
    bool more;
    if (initialize) {
      std::vector<CallIn> calls{{seq, payload, payloadSize}};
      takeSameCalls(tag, calls);
      more = handleInitializes(service->second, calls);
    } else {
      more = handleCall(seq, tag, payload, payloadSize);
    }
    oversized_.reset();
    if (!more) break;
    // The calls that came in one read are answered: their answers leave together.
    if (rpos_ >= rend_) flushAnswers();
  }
  flushAnswers();
  open_.store(false);
  // JIT'd code waiting for its controller learns that it is gone.
  {
    std::lock_guard<std::mutex> lock(dispatchMutex_);
    for (auto &kv : waits_) {
      std::lock_guard<std::mutex> l(kv.second->m);
      kv.second->error = "jit_dispatch failed: the controller is gone";
      kv.second->done = true;
      kv.second->cv.notify_one();
    }
    waits_.clear();
  }
  (void)closedByIdle;
  return fatal_.set ? 1 : 0;
}

void Session::takeSameCalls(uint64_t tag, std::vector<CallIn> &calls) {
  while (rend_ - rpos_ >= kHeader) {
    uint64_t h[4];  // size, opcode, seq, tag
    memcpy(h, rbuf_.data() + rpos_, kHeader);
    // Anything else, or a frame not whole yet, is read as every frame is.
    if (h[1] != kCallWrapper || h[3] != tag || h[0] < kHeader || h[0] > options_.maxFrameSize || h[2] > kMaxSafe || h[0] > rend_ - rpos_) return;
    calls.push_back({h[2], rbuf_.data() + rpos_ + kHeader, h[0] - kHeader});
    rpos_ += h[0];
  }
}

uint8_t *Session::payloadSpace(size_t size) {
  if (payload_ && size <= payloadCap_) return payload_.get();
  if (size > kKeptPayload) {
    oversized_.reset(new (std::nothrow) uint8_t[size]);
    return oversized_.get();
  }
  // Grown to the next power of two, so that payloads growing a little at a time do not each
  // allocate (and fault in) a buffer of their own.
  size_t cap = 1 << 16;
  while (cap < size) cap <<= 1;
  payload_.reset();
  payloadCap_ = 0;
  payload_.reset(new (std::nothrow) uint8_t[cap]);
  if (payload_) payloadCap_ = cap;
  return payload_.get();
}

bool Session::handleCall(uint64_t seq, uint64_t tag, const uint8_t *payload, size_t size) {
  auto it = services_.find(tag);
  if (it == services_.end())
    return fatal("ERR_UNKNOWN_TAG", "call to unknown tag " + Hex(tag) + " (sequence number " + std::to_string(seq) + "): no service or function has that address");
  callsHandled_++;
  // A controller that uses jitmem's own services is a jitmem controller, which closes its
  // sessions itself: the llvm-jitlink workaround must not cut it off between two calls.
  if (jitmemTags_.count(tag)) jitmemController_ = true;
  idleDeadlineNs_ = 0;
  uint64_t t0 = NowNs();
  Reader r(payload, size, "");
  Writer w;
  bool sent = handle(it->second, seq, r, w);
  handlerNs_ += NowNs() - t0;
  if (fatal_.set) return false;
  if (!sent) answer(seq, w.buffer());
  return true;
}

// Reads an SPSFinalizeRequest (with content) or SPSSharedMemoryFinalizeRequest (without).
bool Session::readFinalizeRequest(Reader &r, bool withContent, FinalizeRequest &fr) {
  uint64_t n = r.count(withContent ? 25 : 17);
  for (uint64_t i = 0; i < n && r.ok(); i++) {
    Segment s;
    s.group = r.allocGroup();
    s.addr = r.addr("a segment address");
    s.size = r.u64("a segment size");
    if (withContent) s.content = r.bytes();
    fr.segments.push_back(s);
  }
  uint64_t m = r.count(32);
  for (uint64_t i = 0; i < m && r.ok(); i++) {
    ActionPair p;
    for (int half = 0; half < 2; half++) {
      WrapperCall c;
      c.fn = r.addr("a wrapper function address");
      Bytes a = r.bytes();
      if (a.size) c.args.assign(a.data, a.data + a.size);
      // A call to address 0 is "no call" whatever its arguments, as LLVM skips it.
      if (c.fn != 0) {
        if (half == 0) {
          p.hasFinalize = true;
          p.finalize = std::move(c);
        } else {
          p.hasDealloc = true;
          p.dealloc = std::move(c);
        }
      }
    }
    fr.actions.push_back(std::move(p));
  }
  return r.ok();
}

// A decoder's failure ends the session (the TypeScript executor's decode threw out of its handler).
#define DECODED(r, what)                                                                            \
  do {                                                                                              \
    (r).end();                                                                                      \
    if (!(r).ok()) {                                                                                \
      return fatal((r).error().code.c_str(), RenameWhat((r).error().message, what));               \
    }                                                                                               \
  } while (0)

// The reader was made without a name; messages name what was decoded.
std::string RenameWhat(const std::string &message, const std::string &what) {
  const std::string prefix = "malformed  at";
  if (message.compare(0, prefix.size(), prefix) == 0) return "malformed " + what + " at" + message.substr(prefix.size());
  return message;
}

void PutExpectedAddr(Writer &w, bool ok, uint64_t v, const Err &e) {
  if (ok) w.boolean(true).u64(v);
  else w.boolean(false).string(e.wire());
}

void PutError(Writer &w, bool ok, const Err &e) {
  if (ok) w.boolean(false);
  else w.boolean(true).string(e.wire());
}

// [start, end) pairs, as read_buffers, checksum and code_barrier take them.
using AddrRanges = std::vector<std::pair<uint64_t, uint64_t>>;

AddrRanges ReadAddrRanges(Reader &r) {
  uint64_t count = r.count(16);
  AddrRanges ranges;
  for (uint64_t i = 0; i < count && r.ok(); i++) {
    uint64_t a = r.addr("a range start");
    uint64_t b = r.addr("a range end");
    ranges.emplace_back(a, b);
  }
  return ranges;
}

std::string RangeBackwards(const char *service, const std::pair<uint64_t, uint64_t> &rg) {
  return std::string(service) + ": range [" + Hex(rg.first) + ", " + Hex(rg.second) + ") ends before it starts";
}

bool Session::segmentAt(uint64_t addr, uint64_t size, const char *what, uint64_t &segStart, int &prot, Err &e) {
  Reservation *res = space_.requireRange(addr, size, what, e);
  if (!res) return false;
  uint64_t page = space_.pageSize;
  // Regions are disjoint and kept by start: only the last one starting at or below addr can hold it.
  auto holder = res->regions.upper_bound(addr);
  if (holder != res->regions.begin()) {
    const Region &region = std::prev(holder)->second;
    for (const LiveSegment &s : region.segments) {
      uint64_t end = AlignUp(s.addr + s.size, page);
      if (s.size == 0 || addr < s.addr || addr >= end) continue;
      if (addr + size > end)
        return e.fail("ERR_PATCH_OUT_OF_SEGMENT", std::string(what) + ": [" + Hex(addr) + ", " + Hex(addr + size) + ") runs past its segment [" + Hex(s.addr) + ", " + Hex(end) + ")");
      segStart = s.addr;
      prot = s.prot;
      return true;
    }
  }
  return e.fail("ERR_NOT_INITIALIZED", std::string(what) + ": " + Hex(addr) + " is not inside an initialized segment");
}

// Rewrites bytes of initialized segments, a batch at a time: every patch is checked first, then
// each segment touched gets one write window (RW for the copies, then its protection back and
// the I-cache flushed).
bool Session::patchCode(Reader &r, Err &e) {
  struct Patch {
    uint64_t addr;
    Bytes bytes;
  };
  uint64_t n = r.count(16);
  std::vector<Patch> patches;
  for (uint64_t i = 0; i < n && r.ok(); i++) {
    Patch p;
    p.addr = r.addr();
    p.bytes = r.bytes();
    patches.push_back(p);
  }
  r.end();
  if (!r.ok()) return false;
  if (patches.empty()) return e.fail("ERR_INVALID_PATCH", "patchCode needs at least one patch");
  if (!requireNoCodeRunning("patchCode", e)) return false;
  struct Group {
    int prot;
    uint64_t low, high;
    std::vector<const Patch *> patches;
  };
  std::map<uint64_t, Group> groups;
  for (const Patch &p : patches) {
    if (p.bytes.size == 0) return e.fail("ERR_INVALID_PATCH", "patchCode at " + Hex(p.addr) + " needs at least one byte to write");
    uint64_t seg;
    int prot;
    if (!segmentAt(p.addr, p.bytes.size, "patchCode", seg, prot, e)) return false;
    if (frames_.overlaps(p.addr, p.addr + p.bytes.size))
      return e.fail("ERR_PATCH_REFUSED", "patchCode of [" + Hex(p.addr) + ", " + Hex(p.addr + p.bytes.size) +
                                             ") would rewrite a registered EH frame, which the unwinder reads at any time");
    auto it = groups.find(seg);
    if (it == groups.end()) it = groups.emplace(seg, Group{prot, p.addr, p.addr + p.bytes.size, {}}).first;
    Group &g = it->second;
    g.low = std::min(g.low, p.addr);
    g.high = std::max(g.high, p.addr + p.bytes.size);
    g.patches.push_back(&p);
  }
  uint64_t page = space_.pageSize;
  for (auto &kv : groups) {
    Group &g = kv.second;
    uint64_t first = g.low - g.low % page, length = AlignUp(g.high, page) - first;
    Protect(first, length, PROT_R_ | PROT_W_);
    for (const Patch *p : g.patches) {
      memcpy(reinterpret_cast<void *>(p->addr), p->bytes.data, p->bytes.size);
      gCounts.bytesCopied += p->bytes.size;
    }
    Protect(first, length, g.prot);
    if (g.prot & PROT_X_)
      for (const Patch *p : g.patches) {
        char *b = reinterpret_cast<char *>(p->addr);
        __builtin___clear_cache(b, b + p->bytes.size);
        gCounts.icacheFlushes++;
      }
  }
  return true;
}

void Session::deallocationAnswered() {
  if (!options_.closeWhenIdle || !mainReturned_.load() || jitmemController_) return;
  idleDeadlineNs_ = NowNs() + static_cast<uint64_t>(options_.idleMs) * 1000000ull;
}

// Makes every thread serialize its instruction stream before it runs user code again.
void SyncCore() {
  static int registered = 0;  // 0 unknown, 1 registered, -1 unsupported
  if (registered == 0) registered = syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE, 0, 0) == 0 ? 1 : -1;
  if (registered > 0) syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE, 0, 0);
}

// Decodes an initialize call's arguments into `j`, its instance checked (a wrong one is the
// call's error). False when they are malformed: the session ends (fatal_ says why).
bool Session::decodeInitialize(Service s, Reader &r, InitializeJob &j) {
  bool shm = s == Service::ShmInitialize;
  uint64_t inst = r.addr();
  if (shm) j.base = r.addr();
  readFinalizeRequest(r, !shm, j.fr);
  DECODED(r, shm ? "Initialize arguments" : "initialize arguments");
  j.ok = checkInstance(shm ? kShmInstance : kMemMgrInstance, inst, j.e);
  return true;
}

bool Session::handleInitializes(Service s, const std::vector<CallIn> &calls) {
  callsHandled_ += calls.size();
  idleDeadlineNs_ = 0;
  uint64_t t0 = NowNs();
  // Up to a malformed one, which ends the session once those before it are answered.
  std::vector<InitializeJob> jobs(calls.size());
  size_t decoded = 0;
  for (; decoded < calls.size(); decoded++) {
    Reader r(calls[decoded].payload, calls[decoded].size, "");
    if (!decodeInitialize(s, r, jobs[decoded])) break;
  }
  jobs.resize(decoded);
  if (s == Service::ShmInitialize) mem_.shmInitialize(jobs);
  else mem_.initialize(jobs);
  for (size_t i = 0; i < decoded; i++) {
    Writer w;
    PutExpectedAddr(w, jobs[i].ok, jobs[i].key, jobs[i].e);
    answer(calls[i].seq, w.buffer());
  }
  handlerNs_ += NowNs() - t0;
  return !fatal_.set;
}

// Returns true when the Result is sent later (code running on a thread of its own).
bool Session::handle(Service s, uint64_t seq, Reader &r, Writer &w) {
  Err e;
  switch (s) {
    case Service::MemReserve: {
      uint64_t inst = r.addr(), size = r.u64("the size");
      DECODED(r, "reserve arguments");
      uint64_t base = 0;
      bool ok = checkInstance(kMemMgrInstance, inst, e) && mem_.reserve(size, base, e);
      PutExpectedAddr(w, ok, base, e);
      return false;
    }
    case Service::MemInitialize:
    case Service::ShmInitialize:
      // serve() hands every initialize to handleInitializes; none reaches here.
      return fatal("ERR_INTERNAL", "an initialize call reached the one-call handler");
    case Service::ShmReserve: {
      uint64_t inst = r.addr(), size = r.u64("the size");
      DECODED(r, "Reserve arguments");
      uint64_t base = 0;
      std::string name;
      bool ok = checkInstance(kShmInstance, inst, e) && mem_.shmReserve(size, base, name, e);
      if (ok) {
        w.boolean(true).u64(base).string(name);
      } else {
        w.boolean(false).string(e.wire());
      }
      return false;
    }
    case Service::MemDeinitialize:
    case Service::MemRelease:
    case Service::ShmDeinitialize:
    case Service::ShmRelease: {
      bool shm = s == Service::ShmDeinitialize || s == Service::ShmRelease;
      bool deinit = s == Service::MemDeinitialize || s == Service::ShmDeinitialize;
      const char *op = deinit ? (shm ? "Deinitialize" : "deinitialize") : (shm ? "Release" : "release");
      uint64_t inst = r.addr();
      uint64_t n = r.count(8);
      std::vector<uint64_t> addrs;
      for (uint64_t i = 0; i < n && r.ok(); i++) addrs.push_back(r.addr());
      DECODED(r, std::string(op) + " arguments");
      bool ok = checkInstance(shm ? kShmInstance : kMemMgrInstance, inst, e) &&
                requireNoCodeRunning(op, e);
      if (ok) {
        if (s == Service::MemDeinitialize) ok = mem_.deinitialize(addrs, e);
        else if (s == Service::MemRelease) ok = mem_.release(addrs, e);
        else if (s == Service::ShmDeinitialize) ok = mem_.shmDeinitialize(addrs, e);
        else ok = mem_.shmRelease(addrs, e);
      }
      PutError(w, ok, e);
      deallocationAnswered();
      return false;
    }
    case Service::DylibOpen: {
      uint64_t inst = r.addr();
      std::string path = r.string();
      uint64_t mode = r.u64Big();
      DECODED(r, "open arguments");
      uint64_t handle = 0;
      bool ok = checkInstance(kDylibInstance, inst, e);
      if (ok && mode != 0) ok = e.fail("ERR_UNSUPPORTED_MODE", "open: non-zero mode bits not yet supported");
      if (ok) {
        dlerror();
        void *h = dlopen(path.empty() ? nullptr : path.c_str(), RTLD_NOW | RTLD_GLOBAL);
        if (!h) {
          const char *m = dlerror();
          ok = e.fail("ERR_DLOPEN", m ? m : "dlopen failed: " + path);
        } else {
          handle = reinterpret_cast<uintptr_t>(h);
          dylibHandles_.insert(handle);
        }
      }
      PutExpectedAddr(w, ok, handle, e);
      return false;
    }
    case Service::DylibResolve: {
      uint64_t handle = r.addr();
      uint64_t n = r.count(9);
      std::vector<std::pair<std::string, bool>> set;
      for (uint64_t i = 0; i < n && r.ok(); i++) {
        std::string name = r.string();
        bool required = r.boolean();
        set.emplace_back(name, required);
      }
      DECODED(r, "resolve arguments");
      if (!dylibHandles_.count(handle)) {
        e.fail("ERR_UNKNOWN_HANDLE", Hex(handle) + " is not a handle returned by open");
        w.boolean(false).string(e.wire());
        return false;
      }
      w.boolean(true).u64(set.size());
      for (auto &el : set) {
        uint64_t addr = 0;
        if (!el.first.empty()) {
          dlerror();
          void *p = dlsym(reinterpret_cast<void *>(handle), el.first.c_str());
          if (dlerror() == nullptr) addr = reinterpret_cast<uintptr_t>(p);
        }
        if (addr != 0) resolved_.insert(addr);
        // LLVM 22's logic, kept for compatibility: a missing required symbol is None.
        if (addr == 0 && (el.second || el.first.empty())) {
          w.boolean(false);
        } else {
          w.boolean(true).u64(addr).u8(0x10 /* JITSymbolFlags::Exported */).u8(0);
        }
      }
      return false;
    }
    case Service::Write8:
    case Service::Write16:
    case Service::Write32:
    case Service::Write64:
    case Service::WritePtr: {
      // These results carry no error: a bad address ends the session.
      size_t n = s == Service::Write8 ? 1 : s == Service::Write16 ? 2 : s == Service::Write32 ? 4 : 8;
      uint64_t count = r.count(8 + n);
      std::vector<std::pair<uint64_t, Bytes>> items;
      for (uint64_t i = 0; i < count && r.ok(); i++) {
        uint64_t a = r.addr();
        items.emplace_back(a, r.raw(n));
      }
      static const char *names[] = {"__llvm_orc_bootstrap_mem_write_uint8s_wrapper", "__llvm_orc_bootstrap_mem_write_uint16s_wrapper", "__llvm_orc_bootstrap_mem_write_uint32s_wrapper",
                                    "__llvm_orc_bootstrap_mem_write_uint64s_wrapper", "__llvm_orc_bootstrap_mem_write_pointers_wrapper"};
      int idx = s == Service::Write8 ? 0 : s == Service::Write16 ? 1 : s == Service::Write32 ? 2 : s == Service::Write64 ? 3 : 4;
      DECODED(r, std::string(names[idx]) + " arguments");
      std::string what = s == Service::WritePtr ? "pointer write" : "write of " + std::to_string(n) + " bytes";
      for (auto &it : items)
        if (!space_.requireAccess(it.first, n, PROT_W_, what, e)) return fatal(e.code.c_str(), e.message);
      for (auto &it : items) memcpy(reinterpret_cast<void *>(it.first), it.second.data, n);
      gCounts.bytesCopied += n * items.size();
      return false;
    }
    case Service::Read8:
    case Service::Read16:
    case Service::Read32:
    case Service::Read64:
    case Service::ReadPtr: {
      size_t n = s == Service::Read8 ? 1 : s == Service::Read16 ? 2 : s == Service::Read32 ? 4 : 8;
      uint64_t count = r.count(8);
      std::vector<uint64_t> addrs;
      for (uint64_t i = 0; i < count && r.ok(); i++) addrs.push_back(r.addr());
      static const char *names[] = {"__llvm_orc_bootstrap_mem_read_uint8s_wrapper", "__llvm_orc_bootstrap_mem_read_uint16s_wrapper", "__llvm_orc_bootstrap_mem_read_uint32s_wrapper",
                                    "__llvm_orc_bootstrap_mem_read_uint64s_wrapper", "__llvm_orc_bootstrap_mem_read_pointers_wrapper"};
      int idx = s == Service::Read8 ? 0 : s == Service::Read16 ? 1 : s == Service::Read32 ? 2 : s == Service::Read64 ? 3 : 4;
      DECODED(r, std::string(names[idx]) + " arguments");
      std::string what = s == Service::ReadPtr ? "pointer read" : "read of " + std::to_string(n) + " bytes";
      for (uint64_t a : addrs)
        if (!space_.requireAccess(a, n, PROT_R_, what, e)) return fatal(e.code.c_str(), e.message);
      w.u64(addrs.size());
      for (uint64_t a : addrs) w.raw(reinterpret_cast<const void *>(a), n);
      gCounts.bytesCopied += n * addrs.size();
      return false;
    }
    case Service::WriteBuffers: {
      uint64_t count = r.count(16);
      std::vector<std::pair<uint64_t, Bytes>> items;
      for (uint64_t i = 0; i < count && r.ok(); i++) {
        uint64_t a = r.addr();
        items.emplace_back(a, r.bytes());
      }
      DECODED(r, "write_buffers arguments");
      for (auto &it : items)
        if (!space_.requireAccess(it.first, it.second.size, PROT_W_, "buffer write", e)) return fatal(e.code.c_str(), e.message);
      for (auto &it : items)
        if (it.second.size > 0) {
          memcpy(reinterpret_cast<void *>(it.first), it.second.data, it.second.size);
          gCounts.bytesCopied += it.second.size;
        }
      return false;
    }
    case Service::ReadBuffers: {
      AddrRanges ranges = ReadAddrRanges(r);
      DECODED(r, "read_buffers arguments");
      uint64_t total = 8;
      for (auto &rg : ranges) {
        if (rg.second < rg.first) return fatal("ERR_INVALID_RANGE", RangeBackwards("read_buffers", rg));
        if (!space_.requireAccess(rg.first, rg.second - rg.first, PROT_R_, "buffer read", e)) return fatal(e.code.c_str(), e.message);
        total += 8 + rg.second - rg.first;
      }
      if (total + kHeader > options_.maxFrameSize)
        return fatal("ERR_RANGE_TOO_LARGE", "read_buffers: " + std::to_string(total) + " bytes of ranges do not fit in one frame (limit " + std::to_string(options_.maxFrameSize) +
                                                " bytes); read them in parts");
      w.buffer().reserve(kHeader + total);
      w.u64(ranges.size());
      for (auto &rg : ranges) {
        w.u64(rg.second - rg.first);
        w.raw(reinterpret_cast<const void *>(rg.first), rg.second - rg.first);
        gCounts.bytesCopied += rg.second - rg.first;
      }
      return false;
    }
    case Service::ReadStrings: {
      uint64_t count = r.count(8);
      std::vector<uint64_t> addrs;
      for (uint64_t i = 0; i < count && r.ok(); i++) addrs.push_back(r.addr());
      DECODED(r, "read_strings arguments");
      Writer out;
      out.u64(addrs.size());
      uint64_t page = space_.pageSize;
      for (uint64_t addr : addrs) {
        uint64_t at = addr;
        // Extend page by page until a NUL turns up; never past what we may read.
        for (;;) {
          uint64_t chunkEnd = at - at % page + page;
          if (!space_.requireAccess(at, chunkEnd - at, PROT_R_, "read_strings: string at " + Hex(addr), e)) return fatal(e.code.c_str(), e.message);
          const void *nul = memchr(reinterpret_cast<const void *>(at), 0, chunkEnd - at);
          if (nul) {
            out.bytes(reinterpret_cast<const void *>(addr), reinterpret_cast<uintptr_t>(nul) - addr);
            break;
          }
          at = chunkEnd;
        }
      }
      w = std::move(out);
      return false;
    }
    case Service::RunAsMain: {
      uint64_t fn = r.addr();
      uint64_t count = r.count(8);
      std::vector<std::string> args;
      for (uint64_t i = 0; i < count && r.ok(); i++) args.push_back(r.string());
      DECODED(r, "run_as_main arguments");
      if (!requireCallable(fn, "run_as_main", e)) return fatal(e.code.c_str(), e.message);
      startCode(s, seq, fn, 0, std::move(args), nullptr);
      return true;
    }
    case Service::RunAsVoid: {
      uint64_t fn = r.addr();
      DECODED(r, "run_as_void_function arguments");
      if (!requireCallable(fn, "run_as_void_function", e)) return fatal(e.code.c_str(), e.message);
      startCode(s, seq, fn, 0, {}, nullptr);
      return true;
    }
    case Service::RunAsInt: {
      uint64_t fn = r.addr();
      int32_t arg = r.i32();
      DECODED(r, "run_as_int_function arguments");
      if (!requireCallable(fn, "run_as_int_function", e)) return fatal(e.code.c_str(), e.message);
      startCode(s, seq, fn, arg, {}, nullptr);
      return true;
    }
    case Service::RunProgram: {
      ProgramRun *run = new ProgramRun();
      run->main = r.addr();
      uint64_t count = r.count(8);
      for (uint64_t i = 0; i < count && r.ok(); i++) run->args.push_back(r.string());
      count = r.count(8);
      for (uint64_t i = 0; i < count && r.ok(); i++) run->init.push_back(r.addr());
      count = r.count(8);
      for (uint64_t i = 0; i < count && r.ok(); i++) run->fini.push_back(r.addr());
      r.end();
      if (!r.ok()) {
        Err copy = r.error();
        delete run;
        return fatal(copy.code.c_str(), RenameWhat(copy.message, "run_program arguments"));
      }
      bool ok = requireCallable(run->main, "run_program", e);
      for (uint64_t f : run->init) ok = ok && requireCallable(f, "run_program", e);
      for (uint64_t f : run->fini) ok = ok && requireCallable(f, "run_program", e);
      if (ok && !ProgramBegin(run)) ok = e.fail("ERR_PROGRAM_RUNNING", "a program is already running in this process; one runs at a time");
      if (!ok) {
        delete run;
        w.boolean(false).string(e.wire());
        return false;
      }
      startCode(s, seq, 0, 0, {}, run);
      return true;
    }
    case Service::DylibClose: {
      uint64_t handle = r.addr();
      DECODED(r, "dylib_close arguments");
      bool ok = true;
      if (!dylibHandles_.count(handle)) ok = e.fail("ERR_UNKNOWN_HANDLE", Hex(handle) + " is not a handle returned by open");
      if (ok) {
        dlerror();
        if (dlclose(reinterpret_cast<void *>(handle)) != 0) {
          const char *m = dlerror();
          ok = e.fail("ERR_DLCLOSE", m ? m : "dlclose failed");
        }
      }
      PutError(w, ok, e);
      return false;
    }
    case Service::ReserveWindow: {
      uint64_t start = r.addr(), end = r.addr();
      DECODED(r, "set_reserve_window arguments");
      bool ok = true;
      if (start == 0 && end == 0) space_.hasWindow = false;
      else if (end <= start) ok = e.fail("ERR_INVALID_WINDOW", "set_reserve_window: [" + Hex(start) + ", " + Hex(end) + ") is empty");
      else {
        space_.hasWindow = true;
        space_.windowStart = start;
        space_.windowEnd = end;
      }
      PutError(w, ok, e);
      return false;
    }
    case Service::Checksum: {
      AddrRanges ranges = ReadAddrRanges(r);
      DECODED(r, "checksum arguments");
      uint64_t totalBytes = 0;
      std::vector<std::array<uint8_t, 32>> digests;
      bool ok = true;
      for (auto &rg : ranges) {
        totalBytes += rg.second > rg.first ? rg.second - rg.first : 0;
        if (totalBytes > kMaxChecksumBytes) {
          ok = e.fail("ERR_RANGE_TOO_LARGE", "checksum: the ranges add up to more than " + std::to_string(kMaxChecksumBytes) + " bytes; ask for them in parts");
          break;
        }
        if (rg.second < rg.first) {
          ok = e.fail("ERR_INVALID_RANGE", RangeBackwards("checksum", rg));
          break;
        }
        if (!space_.requireAccess(rg.first, rg.second - rg.first, PROT_R_, "checksum range", e)) {
          ok = false;
          break;
        }
        Sha256 h;
        h.update(reinterpret_cast<const void *>(rg.first), rg.second - rg.first);
        std::array<uint8_t, 32> d;
        h.digest(d.data());
        digests.push_back(d);
      }
      if (!ok) {
        w.boolean(false).string(e.wire());
        return false;
      }
      w.boolean(true).u64(digests.size());
      for (auto &d : digests) w.bytes(d.data(), 32);
      return false;
    }
    case Service::PatchCode: {
      bool ok = patchCode(r, e);
      if (!r.ok()) return fatal(r.error().code.c_str(), RenameWhat(r.error().message, "patch_code arguments"));
      PutError(w, ok, e);
      return false;
    }
    case Service::CodeBarrier: {
      AddrRanges ranges = ReadAddrRanges(r);
      DECODED(r, "code_barrier arguments");
      bool ok = true;
      // Every range is checked before anything is flushed.
      for (auto &rg : ranges) {
        if (rg.second < rg.first) {
          ok = e.fail("ERR_INVALID_RANGE", RangeBackwards("code_barrier", rg));
          break;
        }
        uint64_t seg;
        int prot;
        if (!segmentAt(rg.first, rg.second - rg.first, "code_barrier", seg, prot, e)) {
          ok = false;
          break;
        }
      }
      if (ok) {
        for (auto &rg : ranges) {
          char *b = reinterpret_cast<char *>(rg.first);
          __builtin___clear_cache(b, b + (rg.second - rg.first));
          gCounts.icacheFlushes++;
        }
        SyncCore();
      }
      PutError(w, ok, e);
      return false;
    }
    case Service::Noop: {
      DECODED(r, "noop arguments");
      return false;
    }
    case Service::CostCounters: {
      DECODED(r, "cost_counters arguments");
      rusage ru;
      memset(&ru, 0, sizeof ru);
      getrusage(RUSAGE_SELF, &ru);
      // PROCESS_COST_COUNTER_NAMES order (core/cost-counters.ts), then the time spent in
      // handlers (ns), which a controller that knows only the first eleven ignores, then the
      // writes made to the channel (one per frame, or per batch of kept answers), which no
      // report shows.
      uint64_t values[] = {callsHandled_.load(), bytesSent_.load(), bytesReceived_.load(), gCounts.bytesCopied, gCounts.mmap, gCounts.mprotect, gCounts.munmap,
                           gCounts.shmCreated, gCounts.icacheFlushes, static_cast<uint64_t>(ru.ru_minflt), static_cast<uint64_t>(ru.ru_nvcsw), handlerNs_.load(),
                           writes_.load()};
      w.u64(sizeof values / sizeof values[0]);
      for (uint64_t v : values) w.u64(v);
      return false;
    }
    case Service::UnwindProbe: {
      DECODED(r, "unwind_probe arguments");
      jitmem::UnwindProbe();
      w.boolean(false);
      return false;
    }
  }
  return false;
}

void Session::startCode(Service s, uint64_t seq, uint64_t fn, int32_t arg, std::vector<std::string> args, ProgramRun *run) {
  auto *job = new CodeJob{this, s, seq, fn, arg, std::move(args), run};
  running_++;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 8u << 20);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t t;
  gStartingThreads++;
  int err = pthread_create(&t, &attr, CodeThread, job);
  pthread_attr_destroy(&attr);
  if (err != 0) {
    gStartingThreads--;
    running_--;
    Writer w;
    // The call's own result type, saying it did not run (run-as results carry no error).
    if (run) {
      w.boolean(false).string(std::string("pthread_create failed: ") + strerror(err) + " [ERR_RUN_FAILED]");
      ProgramCancel();
      delete run;
    } else if (s == Service::RunAsMain) {
      w.i64(-1);
    } else {
      w.i32(-1);
    }
    sendFrame(kResult, seq, 0, w.buffer());
    delete job;
  }
}

void *Session::CodeThread(void *arg) {
  CodeJob *job = static_cast<CodeJob *>(arg);
  Session *self = job->session;
  OwnThread(true);
  gStartingThreads--;
  // JIT'd code runs with the signal mask a program starts with.
  sigset_t none;
  sigemptyset(&none);
  pthread_sigmask(SIG_SETMASK, &none, nullptr);
  Writer w;
  if (job->service == Service::RunAsInt) {
    w.i32(reinterpret_cast<int32_t (*)(int32_t)>(static_cast<uintptr_t>(job->fn))(job->arg));
  } else if (job->service == Service::RunAsVoid) {
    w.i32(reinterpret_cast<int32_t (*)()>(static_cast<uintptr_t>(job->fn))());
  } else if (job->service == Service::RunAsMain) {
    std::vector<char *> argv;
    for (auto &a : job->args) argv.push_back(&a[0]);
    argv.push_back(nullptr);
    pid_t host = getpid();
    int status = reinterpret_cast<int (*)(int, char **, char **)>(static_cast<uintptr_t>(job->fn))(static_cast<int>(job->args.size()), argv.data(), environ);
    fflush(nullptr);
    // A child main forked returns here too: it ends as a process, with main's status.
    if (getpid() != host) _exit(status & 0xff);
    self->mainReturned_.store(true);
    w.i64(status);
  } else {
    ProgramRun *run = job->run;
    ProgramRunToEnd(run);
    // Threads the program started and left running end with it, as at a process's exit.
    StopProgramThreads();
    self->mainReturned_.store(true);
    if (!run->error.empty()) {
      w.boolean(false).string(run->error + " [ERR_RUN_FAILED]");
    } else {
      w.boolean(true).i64(run->status).u8(static_cast<uint8_t>(run->outcome)).i32(run->signal).u64(run->faultAddress).u64(run->pc);
    }
    delete run;
  }
  self->running_--;
  self->sendFrame(kResult, job->seq, 0, w.buffer());
  delete job;
  OwnThread(false);
  return nullptr;
}

bool Session::dispatch(uint64_t tag, const char *data, size_t size, DispatchWait &wait) {
  if (!open_.load()) return false;
  Writer w;
  w.raw(data, size);
  uint64_t seq;
  {
    std::lock_guard<std::mutex> lock(dispatchMutex_);
    seq = nextSeq_++;
    waits_[seq] = &wait;
  }
  if (!sendFrame(kCallWrapper, seq, tag, w.buffer())) {
    std::lock_guard<std::mutex> lock(dispatchMutex_);
    waits_.erase(seq);
    return false;
  }
  std::unique_lock<std::mutex> lock(wait.m);
  wait.cv.wait(lock, [&] { return wait.done; });
  return true;
}

// Over pipes, the session's end is made visible to the controller before the teardown: its
// reader gets end of file now, not once this process has run the dealloc actions, unmapped,
// and exited. llvm-jitlink 22 closes its ends and then waits for that end of file (closing a
// pipe does not wake its own reader blocked in read()), so its exit must not hang on anything
// this process does afterwards: teardown, exit handlers, a thread of the program. Sockets stay
// open until the teardown is done (the caller closes them): a jitmem controller takes their
// close as "everything is given back", and llvm-jitlink over TCP is answered by the idle close.
void Session::closeChannel() {
  if (outIsSocket_) return;
  std::lock_guard<std::mutex> lock(writeMutex_);
  if (channelClosed_) return;
  channelClosed_ = true;
  close(in_);
  if (out_ != in_) close(out_);
}

// Runs every pending dealloc action, unmaps every reservation and unlinks every shm name.
void Session::shutdown() {
  if (shutDown_) return;
  shutDown_ = true;
  if (running_.load() > 0) {
    // Code is still running on a thread: unmapping its memory would fault it. The process is
    // about to exit, which ends that thread and frees the memory; only names would outlive it.
    for (auto &kv : space_.list) UnlinkName(kv.second);
    return;
  }
  std::vector<uint64_t> bases;
  for (auto &kv : space_.list) bases.push_back(kv.first);
  for (size_t i = bases.size(); i-- > 0;) {
    ReleaseReservation(space_, actions_, bases[i]);
  }
  frames_.releaseAll();
  munmap(reinterpret_cast<void *>(tokenPage_), space_.pageSize);
}

// In a child the program forked: shared-memory reservations become private copies, so that the
// child's writes to its globals stay its own (as a forked process's do), and the session's
// channel is closed, so that a child that outlives the program holds nothing of its controller.
void Session::privatizeForChild() {
  if (!channelClosed_) {
    close(in_);
    if (out_ != in_) close(out_);
  }
  uint64_t page = space_.pageSize;
  for (auto &kv : space_.list) {
    Reservation &r = kv.second;
    if (!r.shared) continue;
    void *tmp = mmap(nullptr, r.mappedSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (tmp == MAP_FAILED) continue;
    void *at = reinterpret_cast<void *>(r.base);
    mprotect(at, r.mappedSize, PROT_READ);
    memcpy(tmp, at, r.mappedSize);
    if (mmap(at, r.mappedSize, PROT_READ | PROT_WRITE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) != MAP_FAILED) memcpy(at, tmp, r.mappedSize);
    munmap(tmp, r.mappedSize);
    mprotect(at, r.mappedSize, PROT_NONE);
    for (auto &rg : r.regions)
      for (const LiveSegment &s : rg.second.segments) {
        int p = (s.prot & PROT_R_ ? PROT_READ : 0) | (s.prot & PROT_W_ ? PROT_WRITE : 0) | (s.prot & PROT_X_ ? PROT_EXEC : 0);
        mprotect(reinterpret_cast<void *>(s.addr), AlignUp(s.size, page), p);
      }
  }
}

}  // namespace

// __llvm_orc_SimpleRemoteEPC_dispatch_fn: (ctx, fnTag, argData, argSize) -> result buffer.
extern "C" JitmemWrapperResult jitmem_dispatch(void *, const void *tag, const char *data, size_t size) {
  auto outOfBand = [](const char *msg) {
    JitmemWrapperResult r;
    memset(&r, 0, sizeof r);
    r.Data.ValuePtr = strdup(msg);
    return r;
  };
  Session *s = gSession.load();
  if (!s) return outOfBand("jit_dispatch not available (the executor's session is shut down)");
  if (pthread_equal(pthread_self(), gMainThread))
    return outOfBand("jit_dispatch is only available to code started by run_as_* (it would block the executor's session)");
  DispatchWait wait;
  if (!s->dispatch(reinterpret_cast<uintptr_t>(tag), data, size, wait)) return outOfBand("jit_dispatch not available (the executor's session is shut down)");
  if (!wait.error.empty()) return outOfBand(wait.error.c_str());
  JitmemWrapperResult r;
  memset(&r, 0, sizeof r);
  if (wait.result.size() <= sizeof(char *)) {
    memcpy(r.Data.Value, wait.result.data(), wait.result.size());
    r.Size = wait.result.size();
  } else {
    r.Data.ValuePtr = static_cast<char *>(malloc(wait.result.size()));
    if (!r.Data.ValuePtr) return outOfBand("jit_dispatch: out of memory for the result");
    memcpy(r.Data.ValuePtr, wait.result.data(), wait.result.size());
    r.Size = wait.result.size();
  }
  return r;
}

void *DispatchFunctionAddress() { return reinterpret_cast<void *>(&jitmem_dispatch); }

namespace {
void ForkChild() {
  Session *s = gSession.load();
  if (s) s->privatizeForChild();
  gSession.store(nullptr);
}
}  // namespace

int ServeSession(int in, int out, const SessionOptions &options) {
  static std::once_flag atfork;
  std::call_once(atfork, [] { pthread_atfork(nullptr, nullptr, ForkChild); });
  // The channel is the executor's own: no program's child inherits it through exec.
  fcntl(in, F_SETFD, FD_CLOEXEC);
  fcntl(out, F_SETFD, FD_CLOEXEC);
  // Never deleted: a run-as thread still running JIT'd code when the session ends reaches it.
  Session *session = new Session(in, out, options);
  int status = session->serve();
  if (status != 0) {
    const Err &e = session->fatalError();
    fprintf(stderr, "jitmem executor: session ended: %s [%s]\n", e.message.c_str(), e.code.c_str());
  }
  session->closeChannel();
  session->shutdown();
  if (session->runningCode() > 0) {
    // JIT'd code still runs on a thread of ours; the process ends with the session.
    fflush(nullptr);
    _exit(status);
  }
  gSession.store(nullptr);
  return status;
}

}  // namespace jitmem
