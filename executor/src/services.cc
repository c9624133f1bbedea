// LLVM 22's SimpleExecutorMemoryManager (docs/wire-protocol.md §5.1) and
// ExecutorSharedMemoryMapperService (§5.2), and the initialize / deinitialize of a region both
// share. A request is checked as a whole before anything changes: its segments (page-aligned,
// inside one reservation, apart from each other and from every live region, content that fits),
// then every alloc action against the memory as it will be once the region is live. A zero-size
// segment is checked like the others and then ignored. Only then is a byte written; a failure after
// that (an action) undoes what was done.

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "executor.h"
#include "runtime.h"

namespace jitmem {

OsCounts gCounts;

namespace {

constexpr uint64_t kMaxReservation = 1ull << 40;

bool CheckReservationSize(uint64_t size, Err &e) {
  if (size > kMaxReservation)
    return e.fail("ERR_INVALID_SIZE", "reserve of " + std::to_string(size) + " bytes (" + Hex(size) + ") is above this executor's limit of " +
                                          std::to_string(kMaxReservation) + " bytes (1 TiB)");
  return true;
}

std::string Errno(int err) {
  const char *name = strerrorname_np(err);
  return std::string(name ? name : "E?") + " (" + strerror(err) + ")";
}

void FlushICache(uint64_t addr, uint64_t size) {
  char *b = reinterpret_cast<char *>(addr);
  __builtin___clear_cache(b, b + size);
  gCounts.icacheFlushes++;
}

// The pages a region changed the protection of: from its first changed segment to the end of
// its last. Every page in between belongs to the region alone (segments start on page boundaries
// and regions do not overlap, so the next region starts at or after the page where this one
// ends) and goes back to the reservation's protection with the rest, those already there
// included (the kernel leaves them as they are): one call where there was one per segment.
PageSpan ChangedPages(const Reservation &r, const std::vector<LiveSegment> &segments) {
  static const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  PageSpan span{UINT64_MAX, 0};
  for (const LiveSegment &s : segments) {
    if (s.size == 0 || s.prot == r.defaultProt) continue;
    span.start = std::min(span.start, s.addr);
    span.end = std::max(span.end, AlignUp(s.addr + s.size, page));
  }
  return span;
}

// Gives a region's pages back the reservation's protection (ChangedPages).
void RestoreProt(Reservation &r, const std::vector<LiveSegment> &segments) {
  PageSpan span = ChangedPages(r, segments);
  // Only fails when the kernel is out of memory for VMAs; the access checks never assumed more.
  if (span.start < span.end) Protect(span.start, span.end - span.start, r.defaultProt);
}

// Whether no live region of `r` has a page in [start, end).
bool NoLiveRegionIn(const Reservation &r, uint64_t start, uint64_t end) {
  static const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  if (start >= end) return true;
  auto it = r.regions.lower_bound(start);
  if (it != r.regions.end() && it->first < end) return false;
  return it == r.regions.begin() || AlignUp(std::prev(it)->second.end, page) <= start;
}

// Maximal runs of adjacent pages that get the same protection: one mprotect each. Sorts `segs`.
template <typename F>
void ForEachProtRun(std::vector<LiveSegment> &segs, uint64_t page, F f) {
  std::sort(segs.begin(), segs.end(), [](const LiveSegment &a, const LiveSegment &b) { return a.addr < b.addr; });
  size_t i = 0;
  while (i < segs.size()) {
    uint64_t start = segs[i].addr, end = AlignUp(segs[i].addr + segs[i].size, page);
    int prot = segs[i].prot;
    size_t j = i + 1;
    while (j < segs.size() && segs[j].prot == prot && segs[j].addr == end) {
      end = AlignUp(segs[j].addr + segs[j].size, page);
      j++;
    }
    f(start, end - start, prot);
    i = j;
  }
}

}  // namespace

bool Protect(uint64_t addr, uint64_t size, int prot) {
  gCounts.mprotect++;
  int p = (prot & PROT_R_ ? PROT_READ : 0) | (prot & PROT_W_ ? PROT_WRITE : 0) | (prot & PROT_X_ ? PROT_EXEC : 0);
  return mprotect(reinterpret_cast<void *>(addr), size, p) == 0;
}

namespace {

// Every check of one initialize, against the memory as it will be (the regions planned before
// it in the same batch included); nothing is written. On success `region` is what will be live
// and `where` its reservation.
bool PlanRegion(AddressSpace &space, ActionSite &actions, const FinalizeRequest &fr, bool copyContent, Reservation *only, Region &region, Reservation *&where, Err &e) {
  if (fr.segments.empty())
    return e.fail("ERR_EMPTY_FINALIZE_REQUEST", fr.actions.empty() ? "finalization request is empty" : "finalization actions attached to an empty finalization request");
  uint64_t page = space.pageSize;
  Reservation *res = only;
  for (size_t i = 0; i < fr.segments.size(); i++) {
    const Segment &s = fr.segments[i];
    std::string what = "segment " + std::to_string(i);
    if (s.addr % page != 0) return e.fail("ERR_UNALIGNED_SEGMENT", what + " address " + Hex(s.addr) + " is not page-aligned (page size " + std::to_string(page) + ")");
    if (copyContent && s.content.size > s.size)
      return e.fail("ERR_CONTENT_TOO_LARGE", what + " at " + Hex(s.addr) + ": content size (" + std::to_string(s.content.size) + ") exceeds segment size (" + std::to_string(s.size) + ")");
    if (s.addr + s.size > kMaxSafe) return e.fail("ERR_OUT_OF_RESERVATION", what + " at " + Hex(s.addr) + " with size " + std::to_string(s.size) + " wraps the address space");
    Reservation *r = space.requireRange(s.addr, s.size, what, e);
    if (!r) return false;
    if (res && r != res)
      return e.fail("ERR_OUT_OF_RESERVATION", what + " [" + Hex(s.addr) + ", " + Hex(s.addr + s.size) + ") is not inside reservation " + Hex(res->base) +
                                                  "; all segments of a region must lie in one reservation");
    res = r;
  }
  std::vector<const Segment *> segments;
  for (const Segment &s : fr.segments)
    if (s.size > 0) segments.push_back(&s);
  if (segments.empty())
    return e.fail("ERR_EMPTY_FINALIZE_REQUEST", "all " + std::to_string(fr.segments.size()) + " segment(s) of the finalization request are empty: there is nothing to initialize");
  std::vector<const Segment *> sorted = segments;
  std::sort(sorted.begin(), sorted.end(), [](const Segment *a, const Segment *b) { return a->addr < b->addr; });
  for (size_t i = 1; i < sorted.size(); i++) {
    const Segment *prev = sorted[i - 1], *cur = sorted[i];
    if (prev->addr + prev->size > cur->addr)
      return e.fail("ERR_OVERLAPPING_SEGMENTS", "segments [" + Hex(prev->addr) + ", " + Hex(prev->addr + prev->size) + ") and [" + Hex(cur->addr) + ", " +
                                                    Hex(cur->addr + cur->size) + ") overlap");
  }
  Reservation &reservation = *res;
  uint64_t start = sorted.front()->addr, end = sorted.back()->addr + sorted.back()->size;
  // Live regions are disjoint and kept by start: the first one [start, end) could meet is the one
  // just below start, else the first at or above it (one lookup, not a pass over every region).
  auto near = reservation.regions.lower_bound(start);
  if (near != reservation.regions.begin() && std::prev(near)->second.end > start) --near;
  if (near != reservation.regions.end() && near->second.start < end && start < near->second.end) {
    const Region &other = near->second;
    return e.fail("ERR_REGION_OVERLAP", "in initialize, region [" + Hex(start) + ", " + Hex(end) + ") overlaps previous region [" + Hex(other.start) + ", " +
                                            Hex(other.end) + ")");
  }
  // Pages the region covers must be writable now: a page still protected by a region that
  // shares it would fault on the copy.
  if (copyContent)
    for (const Segment *s : segments)
      if (!space.requireAccess(s->addr, s->size, PROT_W_, "segment at " + Hex(s->addr), e)) return false;
  region.start = start;
  region.end = end;
  for (const Segment *s : segments) region.segments.push_back({s->addr, s->size, s->group & PROT_MASK_});
  // The actions, against the memory as it will be: the region is in the record for the length
  // of the check (nothing is read or written meanwhile), then out again.
  if (!fr.actions.empty()) {
    reservation.regions[start] = region;
    bool actionsOk = actions.checkRequest(fr.actions, e);
    reservation.regions.erase(start);
    if (!actionsOk) return false;
  }

  where = &reservation;
  return true;
}

// Sets the protections of the planned regions of one reservation: one mprotect per run of
// adjacent pages that get one protection, across regions (the slab lays a program's graphs side by
// side). Pages of a region start at the reservation's protection, so a run that keeps it needs no
// call. When a call fails, every region goes back and each is protected alone (the one that fails
// is refused, the others go on).
void ProtectPlanned(Reservation &reservation, uint64_t page, std::vector<InitializeJob *> &jobs) {
  auto changedOf = [&](const InitializeJob &j, std::vector<LiveSegment> &out) {
    for (const LiveSegment &s : reservation.regions.at(j.key).segments)
      if (s.prot != reservation.defaultProt) out.push_back(s);
  };
  auto protectRuns = [&](std::vector<LiveSegment> &changed, int &err) {
    bool ok = true;
    ForEachProtRun(changed, page, [&](uint64_t addr, uint64_t size, int prot) {
      if (ok && !Protect(addr, size, prot)) {
        ok = false;
        err = errno;
      }
    });
    return ok;
  };
  std::vector<LiveSegment> changed;
  for (InitializeJob *j : jobs) changedOf(*j, changed);
  int err = 0;
  if (protectRuns(changed, err)) return;
  for (InitializeJob *j : jobs) RestoreProt(reservation, reservation.regions.at(j->key).segments);
  for (InitializeJob *j : jobs) {
    std::vector<LiveSegment> own;
    changedOf(*j, own);
    if (protectRuns(own, err)) continue;
    const Region &region = reservation.regions.at(j->key);
    RestoreProt(reservation, region.segments);
    j->e.fail("ERR_PROTECT_FAILED", "initialize of region [" + Hex(region.start) + ", " + Hex(region.end) + ") failed: mprotect: " + Errno(err));
    reservation.regions.erase(j->key);
    j->ok = false;
  }
}

}  // namespace

void InitializeRegions(AddressSpace &space, ActionSite &actions, std::vector<InitializeJob> &jobs, bool copyContent) {
  // Planned in order: each region is in the record from its plan on, so that the checks of the
  // ones after it see the memory as it will be (as if each had been initialized in turn). One
  // difference: a request that overlaps a region read with it stays refused when that region's
  // action then fails (one at a time it would have found the pages free again); no controller
  // sends overlapping initializes unless it is broken.
  std::map<Reservation *, std::vector<InitializeJob *>> planned;
  for (InitializeJob &j : jobs) {
    if (!j.ok) continue;
    Region region;
    Reservation *where = nullptr;
    if (!PlanRegion(space, actions, j.fr, copyContent, j.only, region, where, j.e)) {
      j.ok = false;
      continue;
    }
    if (copyContent)
      for (const Segment &s : j.fr.segments) {
        if (s.size == 0) continue;
        uint64_t n = s.content.size;
        if (n > 0) memcpy(reinterpret_cast<void *>(s.addr), s.content.data, n);
        gCounts.bytesCopied += n;
        if (s.size > n) memset(reinterpret_cast<void *>(s.addr + n), 0, s.size - n);
      }
    j.key = region.start;
    j.reservation = where;
    where->regions[region.start] = std::move(region);
    planned[where].push_back(&j);
  }
  bool refused = false;
  for (auto &entry : planned) {
    ProtectPlanned(*entry.first, space.pageSize, entry.second);
    for (const InitializeJob *j : entry.second) refused = refused || !j->ok;
  }
  // The regions are live (in the record and protected) before their actions run, in order: an
  // action may need to reach its region's memory, or a region initialized before it.
  for (InitializeJob &j : jobs) {
    if (!j.ok) continue;
    Reservation &reservation = *j.reservation;
    auto it = reservation.regions.find(j.key);
    Region &live = it->second;
    for (const LiveSegment &s : live.segments)
      if (s.prot & PROT_X_) FlushICache(s.addr, s.size);
    // Checked against regions of which one has since been refused: checked again as they are now.
    std::vector<WrapperCall> deallocs;
    bool ok = (!refused || actions.checkRequest(j.fr.actions, j.e)) && actions.runFinalize(j.fr.actions, deallocs, j.e);
    if (!ok) {
      actions.frames.releaseWithin(live.start, live.end);
      std::vector<LiveSegment> segments = std::move(live.segments);
      reservation.regions.erase(it);
      RestoreProt(reservation, segments);
      j.ok = false;
      refused = true;
      continue;
    }
    live.deallocs = std::move(deallocs);
  }
}

std::string DeinitializeRegion(ActionSite &actions, Reservation &r, uint64_t key, PagesToRestore &restore) {
  auto it = r.regions.find(key);
  if (it == r.regions.end()) return "";
  // The region stays live while its dealloc actions run: they may read its memory.
  std::string failure = actions.runDeallocs(it->second.deallocs);
  Region region = std::move(r.regions[key]);
  // Frames the dealloc actions did not take back: the unwinder must not read these pages once
  // they are writable or gone.
  actions.frames.releaseWithin(region.start, region.end);
  r.regions.erase(key);
  PageSpan span = ChangedPages(r, region.segments);
  if (span.start < span.end) restore[&r].push_back(span);
  return failure;
}

// Regions torn down together (a program's graphs, a JIT's old versions) mostly lie side by side
// in their reservation: their pages go back with one mprotect per stretch that no live region
// interrupts, where each took one of its own (python's 176 graphs: 176 calls). Pages between two
// of them that belong to no region have the reservation's protection already, which the call
// leaves them.
void RestorePages(PagesToRestore &restore) {
  for (auto &entry : restore) {
    Reservation &r = *entry.first;
    std::vector<PageSpan> &spans = entry.second;
    std::sort(spans.begin(), spans.end(), [](const PageSpan &a, const PageSpan &b) { return a.start < b.start; });
    size_t i = 0;
    while (i < spans.size()) {
      uint64_t start = spans[i].start, end = spans[i].end;
      size_t j = i + 1;
      for (; j < spans.size() && NoLiveRegionIn(r, end, spans[j].start); j++) end = std::max(end, spans[j].end);
      // Only fails when the kernel is out of memory for VMAs; the access checks never assumed more.
      Protect(start, end - start, r.defaultProt);
      i = j;
    }
  }
  restore.clear();
}

void UnlinkName(Reservation &r) {
  if (r.shmName.empty()) return;
  TrackShmName(r.shmName, false);
  shm_unlink(r.shmName.c_str());  // ENOENT: the controller already unlinked it, as it is meant to
  r.shmName.clear();
}

std::string ReleaseReservation(AddressSpace &space, ActionSite &actions, uint64_t base) {
  auto it = space.list.find(base);
  if (it == space.list.end()) return "";
  Reservation &r = it->second;
  std::string failure;
  std::vector<uint64_t> keys;
  for (auto &kv : r.regions) keys.push_back(kv.first);
  // The pages go with the mapping: none needs its protection back first.
  PagesToRestore unmapped;
  for (size_t i = keys.size(); i-- > 0;) {
    std::string f = DeinitializeRegion(actions, r, keys[i], unmapped);
    if (failure.empty()) failure = f;
  }
  actions.frames.releaseWithin(r.base, r.base + r.mappedSize);
  gCounts.munmap++;
  if (munmap(reinterpret_cast<void *>(r.base), r.mappedSize) != 0 && failure.empty()) failure = "munmap of " + Hex(r.base) + " failed: " + Errno(errno);
  UnlinkName(r);
  space.list.erase(it);
  return failure;
}

// ---- The memory manager -------------------------------------------------------------------

bool MemoryServices::reserve(uint64_t size, uint64_t &base, Err &e) {
  if (size == 0) {
    base = 0;
    return true;
  }
  if (!CheckReservationSize(size, e)) return false;
  uint64_t length = AlignUp(size, space_.pageSize);
  gCounts.mmap++;
  void *p = space_.hasWindow ? MapWithin(length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, space_.windowStart, space_.windowEnd)
                             : mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    int err = errno;
    if (space_.hasWindow)
      return e.fail(err == ENOMEM ? "ERR_NO_ROOM_IN_WINDOW" : "ERR_MMAP", "reserveWithin: no free range of " + std::to_string(length) + " bytes inside [" +
                                                                              Hex(space_.windowStart) + ", " + Hex(space_.windowEnd) + ") (" + strerror(err) + ")");
    return e.fail(strerrorname_np(err) ? strerrorname_np(err) : "ERR_MMAP", "mmap(length=" + std::to_string(length) + ", prot=3) failed: " + Errno(err));
  }
  base = reinterpret_cast<uintptr_t>(p);
  space_.add(false, base, size, PROT_R_ | PROT_W_, "");
  return true;
}

void MemoryServices::initialize(std::vector<InitializeJob> &jobs) {
  for (InitializeJob &j : jobs) {
    if (!j.ok) continue;
    for (const Segment &s : j.fr.segments) {
      Reservation *r = space_.containing(s.addr);
      if (r && r->shared) {
        j.ok = j.e.fail("ERR_WRONG_SERVICE", "segment at " + Hex(s.addr) + " lies in a shared-memory reservation; initialize it through the shared-memory mapper service");
        break;
      }
    }
  }
  InitializeRegions(space_, actions_, jobs, true);
}

static bool RequireDistinct(const std::vector<uint64_t> &values, const char *op, const char *what, Err &e) {
  std::set<uint64_t> seen;
  for (uint64_t v : values)
    if (!seen.insert(v).second) return e.fail("ERR_DUPLICATE_KEY", std::string(op) + " names the " + what + " " + Hex(v) + " more than once");
  return true;
}

bool MemoryServices::deinitialize(const std::vector<uint64_t> &keys, Err &e) {
  if (!RequireDistinct(keys, "deinitialize", "key", e)) return false;
  std::vector<std::pair<Reservation *, uint64_t>> found;
  for (uint64_t key : keys) {
    Reservation *r = space_.containing(key);
    if (!r || r->shared) return e.fail("ERR_UNKNOWN_KEY", "in deinitialize, address " + Hex(key) + " is not part of any reserved address range");
    if (!r->regions.count(key))
      return e.fail("ERR_UNKNOWN_KEY", "in deinitialize, address " + Hex(key) + " does not correspond to the start of any initialized region");
    found.emplace_back(r, key);
  }
  std::string failure;
  PagesToRestore restore;
  for (size_t i = found.size(); i-- > 0;) {
    std::string f = DeinitializeRegion(actions_, *found[i].first, found[i].second, restore);
    if (failure.empty()) failure = f;
  }
  RestorePages(restore);
  if (!failure.empty()) return e.fail("ERR_ALLOC_ACTION_FAILED", failure);
  return true;
}

bool MemoryServices::release(const std::vector<uint64_t> &bases, Err &e) {
  if (!RequireDistinct(bases, "release", "base", e)) return false;
  for (uint64_t base : bases) {
    Reservation *r = space_.byBase(base);
    if (!r || r->shared) return e.fail("ERR_UNKNOWN_RESERVATION", "in release, " + Hex(base) + " is not part of any reserved address range");
  }
  std::string failure;
  for (size_t i = bases.size(); i-- > 0;) {
    std::string f = ReleaseReservation(space_, actions_, bases[i]);
    if (failure.empty()) failure = f;
  }
  if (!failure.empty()) return e.fail("ERR_ALLOC_ACTION_FAILED", failure);
  return true;
}

// ---- The shared-memory service ------------------------------------------------------------
// Each reservation is a POSIX shm object mapped PROT_NONE here; the controller maps it too and
// writes content through its own view, so initialize only changes protections and runs actions.
// Names are unlinked as soon as the controller must have opened them (initialize) and, at the
// latest, when the session ends, so no object outlives its session.

bool MemoryServices::shmReserve(uint64_t size, uint64_t &base, std::string &name, Err &e) {
  if (size == 0) return e.fail("ERR_INVALID_SIZE", "Reserve of 0 bytes: a shared-memory reservation needs at least one byte");
  if (!CheckReservationSize(size, e)) return false;
  // Names have a random part, so EEXIST means someone made that very name first: take another.
  const int attempts = 8;
  int fd = -1;
  for (int i = 1;; i++) {
    uint8_t rnd[8] = {0};
    if (getrandom(rnd, sizeof rnd, 0) != sizeof rnd) {
      for (auto &b : rnd) b = static_cast<uint8_t>(rand());
    }
    char hex[17];
    for (int k = 0; k < 8; k++) snprintf(hex + 2 * k, 3, "%02x", rnd[k]);
    // A test may fix the random part, to take the names first as an attacker who guessed them.
    const char *fixed = getenv("JITMEM_EXECUTOR_SHM_RANDOM");
    if (fixed && strlen(fixed) == 16 && strspn(fixed, "0123456789abcdef") == 16) memcpy(hex, fixed, 17);
    name = prefix_ + std::to_string(getpid()) + "_" + std::to_string(++counter_) + "_" + hex;
    fd = shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) break;
    int err = errno;
    if (err == EEXIST && i < attempts) continue;
    return e.fail("ERR_SHM_CREATE_FAILED", "Reserve of " + std::to_string(size) + " bytes: cannot create a shared-memory object (" + std::to_string(attempts) +
                                               " names tried, the last \"" + name + "\"): shm_open(name=" + name + ", O_CREAT|O_EXCL) failed: " + Errno(err));
  }
  gCounts.shmCreated++;
  TrackShmName(name, true);
  if (ftruncate(fd, static_cast<off_t>(size)) != 0) {
    int err = errno;
    close(fd);
    TrackShmName(name, false);
    shm_unlink(name.c_str());
    return e.fail("ERR_SHM_CREATE_FAILED", "Reserve of " + std::to_string(size) + " bytes: ftruncate of " + name + " failed: " + Errno(err));
  }
  uint64_t length = AlignUp(size, space_.pageSize);
  gCounts.mmap++;
  void *p = space_.hasWindow ? MapWithin(length, PROT_NONE, MAP_SHARED, fd, space_.windowStart, space_.windowEnd) : mmap(nullptr, length, PROT_NONE, MAP_SHARED, fd, 0);
  int err = errno;
  close(fd);
  if (p == MAP_FAILED) {
    TrackShmName(name, false);
    shm_unlink(name.c_str());
    if (space_.hasWindow)
      return e.fail(err == ENOMEM ? "ERR_NO_ROOM_IN_WINDOW" : "ERR_MMAP", "mapSharedWithin: no free range of " + std::to_string(length) + " bytes inside [" +
                                                                              Hex(space_.windowStart) + ", " + Hex(space_.windowEnd) + ") (" + strerror(err) + ")");
    return e.fail("ERR_MMAP", "mmap of " + name + " (" + std::to_string(length) + " bytes, MAP_SHARED) failed: " + Errno(err));
  }
  base = reinterpret_cast<uintptr_t>(p);
  space_.add(true, base, size, 0, name);
  return true;
}

void MemoryServices::shmInitialize(std::vector<InitializeJob> &jobs) {
  for (InitializeJob &j : jobs) {
    if (!j.ok) continue;
    j.only = space_.byBase(j.base);
    if (!j.only || !j.only->shared)
      j.ok = j.e.fail("ERR_UNKNOWN_RESERVATION", "in initialize, " + Hex(j.base) + " is not the base of any shared-memory reservation");
  }
  InitializeRegions(space_, actions_, jobs, false);
  for (InitializeJob &j : jobs)
    if (j.ok) UnlinkName(*j.only);
}

bool MemoryServices::shmDeinitialize(const std::vector<uint64_t> &keys, Err &e) {
  // Unknown keys are not an error, as in LLVM 22 (an abandoned allocation was never initialized).
  std::string failure;
  PagesToRestore restore;
  for (size_t i = keys.size(); i-- > 0;) {
    Reservation *r = space_.containing(keys[i]);
    if (r && r->shared && r->regions.count(keys[i])) {
      std::string f = DeinitializeRegion(actions_, *r, keys[i], restore);
      if (failure.empty()) failure = f;
    }
  }
  RestorePages(restore);
  if (!failure.empty()) return e.fail("ERR_ALLOC_ACTION_FAILED", failure);
  return true;
}

bool MemoryServices::shmRelease(const std::vector<uint64_t> &bases, Err &e) {
  if (!RequireDistinct(bases, "Release", "base", e)) return false;
  for (uint64_t base : bases) {
    Reservation *r = space_.byBase(base);
    if (!r || !r->shared) return e.fail("ERR_UNKNOWN_RESERVATION", "in release, " + Hex(base) + " is not the base of any shared-memory reservation");
  }
  std::string failure;
  for (size_t i = bases.size(); i-- > 0;) {
    std::string f = ReleaseReservation(space_, actions_, bases[i]);
    if (failure.empty()) failure = f;
  }
  if (!failure.empty()) return e.fail("ERR_ALLOC_ACTION_FAILED", failure);
  return true;
}

}  // namespace jitmem
