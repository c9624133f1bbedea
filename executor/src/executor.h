// The native jitmem executor (docs/design.md §5): one process that owns target memory and serves
// one controller over the ORC SimpleRemoteEPC wire of LLVM 22 (docs/wire-protocol.md).
//
// Built without C++ exceptions (-fno-exceptions): every request path reports failure through
// an Err, and a request is checked whole before anything changes (regions.cc). A throw would
// make the unwinder read every EH frame registered in the process, JIT'd ones included.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace jitmem {

// A refusal with a stable code; services send `message [code]` back inside an SPSError.
struct Err {
  std::string code;
  std::string message;
  bool set = false;
  bool fail(const char *c, std::string m) {
    if (!set) {
      code = c;
      message = std::move(m);
      set = true;
    }
    return false;
  }
  std::string wire() const { return message + " [" + code + "]"; }
};

std::string Hex(uint64_t v);
inline uint64_t AlignUp(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

constexpr uint64_t kMaxSafe = (1ull << 53) - 1;
// LLVM's MemProt bits, as an AllocGroup id carries them in its low three bits (the finalize
// lifetime is bit 3): graph/alloc-group.ts's R, W, X and PROT_MASK.
constexpr int PROT_R_ = 1, PROT_W_ = 2, PROT_X_ = 4;
constexpr int PROT_MASK_ = PROT_R_ | PROT_W_ | PROT_X_;
std::string ProtText(int prot);

// ---- SPS (docs/wire-protocol.md §2) -----------------------------------------------------------

struct Bytes {
  const uint8_t *data = nullptr;
  size_t size = 0;
};

// A reader whose first failure sticks: later reads return zeros, so a decoder reads its whole
// shape and checks ok() once. Numbers that name sizes or addresses must be below 2^53, as the
// TypeScript side of the wire requires.
class Reader {
 public:
  Reader(const uint8_t *data, size_t size, std::string what) : b_(data), n_(size), what_(std::move(what)) {}
  bool ok() const { return !err_.set; }
  const Err &error() const { return err_; }
  size_t offset() const { return pos_; }
  size_t remaining() const { return n_ - pos_; }
  bool malformed(const std::string &message);

  uint8_t u8();
  bool boolean();
  int32_t i32();
  uint64_t u64Big();
  uint64_t u64(const char *what = "a u64");
  uint64_t addr(const char *what = "an address") { return u64(what); }
  // A sequence count that the remaining bytes can hold at minElement bytes each.
  uint64_t count(size_t minElement);
  Bytes raw(size_t n);
  Bytes bytes();
  std::string string();
  uint8_t allocGroup();
  void end();

 private:
  bool need(size_t k, const char *what);
  const uint8_t *b_;
  size_t n_;
  size_t pos_ = 0;
  std::string what_;
  Err err_;
};

// An SPS writer that leaves 32 bytes in front for the frame header.
class Writer {
 public:
  Writer() { buf_.resize(32); }
  Writer &u8(uint8_t v) {
    buf_.push_back(v);
    return *this;
  }
  Writer &boolean(bool v) { return u8(v ? 1 : 0); }
  Writer &u64(uint64_t v);
  Writer &i64(int64_t v) { return u64(static_cast<uint64_t>(v)); }
  Writer &i32(int32_t v);
  Writer &raw(const void *p, size_t n);
  Writer &bytes(const void *p, size_t n) { return u64(n).raw(p, n); }
  Writer &string(const std::string &s) { return bytes(s.data(), s.size()); }
  // SPSError: success, or a message.
  Writer &error(const Err *e) { return e && e->set ? boolean(true).string(e->wire()) : boolean(false); }
  size_t payloadSize() const { return buf_.size() - 32; }
  std::vector<uint8_t> &buffer() { return buf_; }
  uint8_t *grow(size_t n) {
    size_t at = buf_.size();
    buf_.resize(at + n);
    return buf_.data() + at;
  }

 private:
  std::vector<uint8_t> buf_;
};

// ---- Target memory (address_space.cc) -----------------------------------------------------

struct WrapperCall {
  uint64_t fn = 0;
  std::vector<uint8_t> args;
};

struct ActionPair {
  bool hasFinalize = false, hasDealloc = false;
  WrapperCall finalize, dealloc;
};

struct Segment {
  uint8_t group = 0;
  uint64_t addr = 0, size = 0;
  Bytes content;
};

struct FinalizeRequest {
  std::vector<Segment> segments;
  std::vector<ActionPair> actions;
};

struct LiveSegment {
  uint64_t addr, size;
  int prot;
};

struct Region {
  uint64_t start = 0, end = 0;
  std::vector<LiveSegment> segments;
  std::vector<WrapperCall> deallocs;
};

struct Reservation {
  bool shared = false;
  uint64_t base = 0, size = 0, mappedSize = 0;
  int defaultProt = 0;
  std::map<uint64_t, Region> regions;
  std::string shmName;  // until unlinked
};

class AddressSpace {
 public:
  uint64_t pageSize;
  bool hasWindow = false;
  uint64_t windowStart = 0, windowEnd = 0;
  std::map<uint64_t, Reservation> list;  // by base

  explicit AddressSpace(uint64_t page) : pageSize(page) {}
  Reservation &add(bool shared, uint64_t base, uint64_t size, int defaultProt, const std::string &shmName);
  Reservation *containing(uint64_t addr);
  Reservation *byBase(uint64_t base);
  Reservation *requireRange(uint64_t addr, uint64_t size, const std::string &what, Err &e);
  Reservation *requireAccess(uint64_t addr, uint64_t size, int need, const std::string &what, Err &e);

 private:
  Reservation *containingEnd(uint64_t addr);
};

// ---- EH frames (eh_frame.cc) --------------------------------------------------------------

class EHFrameRegistry {
 public:
  explicit EHFrameRegistry(AddressSpace &space) : space_(space) {}
  bool has(uint64_t start) const { return frames_.count(start) != 0; }
  size_t size() const { return frames_.size(); }
  // Parses [start, end) as libgcc will read it; walked = bytes up to the terminator included.
  bool check(uint64_t start, uint64_t end, const std::string &what, uint64_t &walked, Err &e);
  bool registerFrame(uint64_t start, uint64_t end, const std::string &what, Err &e);
  bool deregisterFrame(uint64_t start, uint64_t end, const std::string &what, Err &e);
  bool overlaps(uint64_t lo, uint64_t hi) const;
  int releaseWithin(uint64_t lo, uint64_t hi);
  void releaseAll();

 private:
  struct Registered {
    uint64_t start, end;
    bool empty;
  };
  void take(uint64_t start);
  bool read(uint64_t start, uint64_t end, const std::string &what, std::vector<uint8_t> &out, Err &e);
  // The first registered frame that can reach past lo: none longer than longest_ was registered.
  std::map<uint64_t, Registered>::const_iterator firstReaching(uint64_t lo) const;
  AddressSpace &space_;
  std::map<uint64_t, Registered> frames_;
  // The longest frame ever registered (never lowered: a bound, not an exact maximum).
  uint64_t longest_ = 0;
};

// ---- Alloc actions (actions.cc) -----------------------------------------------------------

class ActionSite {
 public:
  ActionSite(AddressSpace &space, EHFrameRegistry &frames) : space(space), frames(frames) {}
  AddressSpace &space;
  EHFrameRegistry &frames;
  std::set<uint64_t> ignored;

  // Static checks of every action of a request (the region being initialized is live meanwhile).
  bool checkRequest(const std::vector<ActionPair> &actions, Err &e);
  // Finalize halves in order; on failure the deallocs that ran are undone. Collects deallocs.
  bool runFinalize(const std::vector<ActionPair> &actions, std::vector<WrapperCall> &deallocs, Err &e);
  // Dealloc calls in reverse; all run; returns the first failure's wire message, or "".
  std::string runDeallocs(const std::vector<WrapperCall> &deallocs);

 private:
  bool checkStatic(const WrapperCall &call, const std::string &what, bool finalize, std::set<uint64_t> &registering, Err &e);
  bool checkLive(const WrapperCall &call, const std::string &what, Err &e);
  bool runOne(const WrapperCall &call, const std::string &what, Err &e);
  bool traceLog(const WrapperCall &call, const std::string &what, uint64_t &log, uint64_t &capacity, Err &e);
  bool ehRange(const WrapperCall &call, const std::string &what, uint64_t &start, uint64_t &end, Err &e);
};

// ---- Memory services (services.cc) --------------------------------------------------------

struct OsCounts {
  uint64_t mmap = 0, mprotect = 0, munmap = 0, shmCreated = 0, icacheFlushes = 0, bytesCopied = 0;
};
extern OsCounts gCounts;

bool Protect(uint64_t addr, uint64_t size, int prot);
// One initialize call: its request in, its answer (key, or the error) out.
struct InitializeJob {
  FinalizeRequest fr;
  uint64_t base = 0;  // the reservation a shared-memory Initialize names
  bool ok = true;     // false: `e` says why
  uint64_t key = 0;
  Err e;
  Reservation *only = nullptr;         // the reservation every segment must lie in, when one is named
  Reservation *reservation = nullptr;  // where its region is, once planned
};
// Initializes the jobs' regions as if one after the other, their protections set together.
void InitializeRegions(AddressSpace &space, ActionSite &actions, std::vector<InitializeJob> &jobs, bool copyContent);
// Page ranges [start, end) whose protection goes back to their reservation's.
struct PageSpan {
  uint64_t start, end;
};
// The pages each reservation's regions torn down in one call give back (RestorePages).
using PagesToRestore = std::map<Reservation *, std::vector<PageSpan>>;
// Runs the region's dealloc actions and forgets it; its pages join `restore`.
std::string DeinitializeRegion(ActionSite &actions, Reservation &r, uint64_t key, PagesToRestore &restore);
// Gives the pages back their reservation's protection, with the fewest mprotect calls.
void RestorePages(PagesToRestore &restore);
std::string ReleaseReservation(AddressSpace &space, ActionSite &actions, uint64_t base);
void UnlinkName(Reservation &r);

class MemoryServices {
 public:
  MemoryServices(AddressSpace &space, ActionSite &actions, std::string shmPrefix) : space_(space), actions_(actions), prefix_(std::move(shmPrefix)) {}
  bool reserve(uint64_t size, uint64_t &base, Err &e);
  // Initializes read together (pipelined by the controller) are answered as one call each would be.
  void initialize(std::vector<InitializeJob> &jobs);
  bool deinitialize(const std::vector<uint64_t> &keys, Err &e);
  bool release(const std::vector<uint64_t> &bases, Err &e);
  bool shmReserve(uint64_t size, uint64_t &base, std::string &name, Err &e);
  void shmInitialize(std::vector<InitializeJob> &jobs);
  bool shmDeinitialize(const std::vector<uint64_t> &keys, Err &e);
  bool shmRelease(const std::vector<uint64_t> &bases, Err &e);

 private:
  AddressSpace &space_;
  ActionSite &actions_;
  std::string prefix_;
  uint64_t counter_ = 0;
};

// ---- SHA-256 and HMAC (sha256.cc) ---------------------------------------------------------

class Sha256 {
 public:
  // `portable`: the plain C++ rounds even on a CPU with SHA extensions (the self-test checks both).
  explicit Sha256(bool portable = false);
  void update(const void *data, size_t n);
  void digest(uint8_t out[32]);
  // Whether this CPU has the SHA extensions the hash uses unless told `portable`.
  static bool shaExtensionsAvailable();

 private:
  void blocks(const uint8_t *p, size_t n);
  void block(const uint8_t *p);
  bool shaExtensions_;
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t used_ = 0;
  uint64_t total_ = 0;
};
void HmacSha256(const uint8_t *key, size_t keyLen, const uint8_t *msg, size_t msgLen, uint8_t out[32]);
// Sets up a second message part: HMAC(key, a || b).
void HmacSha256Two(const uint8_t *key, size_t keyLen, const uint8_t *a, size_t aLen, const uint8_t *b, size_t bLen, uint8_t out[32]);

// ---- The session (session.cc) -------------------------------------------------------------

struct SessionOptions {
  uint64_t maxFrameSize = 256ull << 20;
  uint64_t maxUnsentBytes = 64ull << 20;
  bool closeWhenIdle = false;
  int idleMs = 100;
  std::string shmPrefix = "/jitmem_";
};

// Serves one session on (in, out); returns 0 (the controller went away) or 1 (protocol error,
// said on stderr).
int ServeSession(int in, int out, const SessionOptions &options);
// Every shm name this process created and has not unlinked, in a table a signal handler can
// walk (session.cc); UnlinkTrackedNames is async-signal-safe.
void TrackShmName(const std::string &name, bool add);
void UnlinkTrackedNames();
// The address advertised as __llvm_orc_SimpleRemoteEPC_dispatch_fn.
void *DispatchFunctionAddress();

}  // namespace jitmem
