// Input files mapped read-only for the linker, and the guard that keeps a file cut short under
// the mapping from killing the process.
//
// Reading an 11.8 MB archive into fresh memory faults in and zeroes 2,900 anonymous pages before
// the copy (about 6 ms here, most of a first link's read phase); a private read-only mapping of
// the same file shares the page cache's pages and costs well under 1 ms to touch. What reading
// never risked, a mapping does: a page of it past the file's end after someone truncated the
// file raises SIGBUS. The guard catches SIGBUS inside a guarded mapping, puts zero pages over the
// rest of it, marks it, and lets the access go on; the loader asks after the link whether any
// input was marked (or changed size or time) and refuses the program if so (ERR_INPUT_CHANGED).
// A SIGBUS anywhere else goes to whatever handled it before, or kills the process as it would have.

#include <signal.h>
#include <unistd.h>

#include <atomic>

#include "jitmem.h"

namespace jitmem {
namespace {

// Guarded mappings at once; a file mapped when all are taken is read instead (the caller's
// fallback), so the table never has to grow where a signal handler reads it.
constexpr size_t kGuardSlots = 4096;

struct GuardSlot {
  std::atomic<uintptr_t> start{0};
  std::atomic<uintptr_t> end{0};
  std::atomic<int> faulted{0};
};

GuardSlot guard_slots[kGuardSlots];
struct sigaction previous_bus_action;
uintptr_t page_mask = 0;
bool guard_installed = false;

void PassOn(int sig, siginfo_t *info, void *context) {
  if (previous_bus_action.sa_flags & SA_SIGINFO) {
    if (previous_bus_action.sa_sigaction != nullptr) {
      previous_bus_action.sa_sigaction(sig, info, context);
      return;
    }
  } else if (previous_bus_action.sa_handler != SIG_DFL && previous_bus_action.sa_handler != SIG_IGN) {
    previous_bus_action.sa_handler(sig);
    return;
  }
  // The default action: returning re-runs the access, which now ends the process as SIGBUS always did.
  signal(SIGBUS, SIG_DFL);
}

void OnBus(int sig, siginfo_t *info, void *context) {
  const uintptr_t address = reinterpret_cast<uintptr_t>(info->si_addr);
  for (GuardSlot &slot : guard_slots) {
    const uintptr_t start = slot.start.load(std::memory_order_acquire);
    const uintptr_t end = slot.end.load(std::memory_order_acquire);
    if (start == 0 || address < start || address >= end) continue;
    const uintptr_t page = address & page_mask;
    // mmap is a plain system call on Linux, safe here: zero pages from the faulting one to the end.
    void *p = mmap(reinterpret_cast<void *>(page), end - page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (p == MAP_FAILED) break;
    slot.faulted.store(1, std::memory_order_release);
    return;
  }
  PassOn(sig, info, context);
}

bool InstallGuard() {
  if (guard_installed) return true;
  page_mask = ~static_cast<uintptr_t>(sysconf(_SC_PAGESIZE) - 1);
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_sigaction = OnBus;
  action.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&action.sa_mask);
  if (sigaction(SIGBUS, &action, &previous_bus_action) != 0) return false;
  guard_installed = true;
  return true;
}

GuardSlot *TakeSlot() {
  for (GuardSlot &slot : guard_slots) {
    uintptr_t free_start = 0;
    // A taken slot is marked with 1 until its range is stored (no real mapping starts at 1).
    if (slot.start.compare_exchange_strong(free_start, 1, std::memory_order_acq_rel)) return &slot;
  }
  return nullptr;
}

GuardSlot *SlotOf(uintptr_t start) {
  for (GuardSlot &slot : guard_slots)
    if (slot.start.load(std::memory_order_acquire) == start) return &slot;
  return nullptr;
}

struct Mapping {
  void *address;
  size_t length;
  GuardSlot *slot;
};

void Unmap(Napi::Env, void *, Mapping *mapping) {
  // Out of the guard first: the range may be handed to another mapping right after munmap.
  mapping->slot->end.store(0, std::memory_order_release);
  mapping->slot->faulted.store(0, std::memory_order_relaxed);
  mapping->slot->start.store(0, std::memory_order_release);
  munmap(mapping->address, mapping->length);
  delete mapping;
}

// mapFile(fd, length): a Uint8Array over a private read-only mapping of the file's first
// `length` bytes, unmapped when the array is collected; undefined when every guard slot is taken.
Napi::Value MapFile(const Napi::CallbackInfo &info) {
  const uint64_t fd = U64(info, 0, "fd"), length = U64(info, 1, "length");
  JITMEM_ARGS_OK(info);
  if (!InstallGuard()) return ThrowErrno(info.Env(), "sigaction", "SIGBUS", errno);
  GuardSlot *slot = TakeSlot();
  if (slot == nullptr) return info.Env().Undefined();
  void *p = mmap(nullptr, length, PROT_READ, MAP_PRIVATE, static_cast<int>(fd), 0);
  if (p == MAP_FAILED) {
    const int err = errno;
    slot->start.store(0, std::memory_order_release);
    return ThrowErrno(info.Env(), "mmap", "fd=" + std::to_string(fd) + ", length=" + std::to_string(length), err);
  }
  const uintptr_t start = reinterpret_cast<uintptr_t>(p);
  slot->faulted.store(0, std::memory_order_relaxed);
  slot->end.store((start + length + ~page_mask) & page_mask, std::memory_order_release);
  slot->start.store(start, std::memory_order_release);
  Mapping *mapping = new Mapping{p, length, slot};
  Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(info.Env(), p, length, Unmap, mapping);
  return Napi::Uint8Array::New(info.Env(), length, buffer, 0);
}

// mappedFileFaulted(view): whether a SIGBUS hit the mapping under `view` (its file was cut short).
Napi::Value MappedFileFaulted(const Napi::CallbackInfo &info) {
  if (info.Length() < 1 || !info[0].IsTypedArray()) return ThrowType(info.Env(), "mappedFileFaulted takes a Uint8Array");
  Napi::ArrayBuffer buffer = info[0].As<Napi::TypedArray>().ArrayBuffer();
  GuardSlot *slot = SlotOf(reinterpret_cast<uintptr_t>(buffer.Data()));
  if (slot == nullptr) return ThrowType(info.Env(), "mappedFileFaulted: the array is not over a mapped file");
  return Napi::Boolean::New(info.Env(), slot->faulted.load(std::memory_order_acquire) != 0);
}

}  // namespace

void RegisterMappedFile(Napi::Env env, Napi::Object exports) {
  exports.Set("mapFile", Napi::Function::New(env, MapFile));
  exports.Set("mappedFileFaulted", Napi::Function::New(env, MappedFileFaulted));
}

}  // namespace jitmem
