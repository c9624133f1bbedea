// Everything the executor has mapped for its controller, with the protection of every page. Each
// request that names memory is checked here before the executor touches a byte, so that no request,
// however wrong, can make this process fault: LLVM's executor trusts its controller and writes
// first (docs/wire-protocol.md §5.1 pitfall); we check first. Page protections are derived from the
// live regions, so a 1 GiB slab costs no per-page table.

#include <algorithm>

#include "executor.h"

namespace jitmem {

Reservation &AddressSpace::add(bool shared, uint64_t base, uint64_t size, int defaultProt, const std::string &shmName) {
  Reservation &r = list[base];
  r.shared = shared;
  r.base = base;
  r.size = size;
  r.mappedSize = AlignUp(std::max<uint64_t>(size, 1), pageSize);
  r.defaultProt = defaultProt;
  r.regions.clear();
  r.shmName = shmName;
  return r;
}

Reservation *AddressSpace::containing(uint64_t addr) {
  auto it = list.upper_bound(addr);
  if (it == list.begin()) return nullptr;
  --it;
  Reservation &r = it->second;
  return addr >= r.base && addr < r.base + r.size ? &r : nullptr;
}

Reservation *AddressSpace::byBase(uint64_t base) {
  Reservation *r = containing(base);
  return r && r->base == base ? r : nullptr;
}

Reservation *AddressSpace::containingEnd(uint64_t addr) {
  if (addr == 0) return nullptr;
  auto it = list.upper_bound(addr - 1);
  if (it == list.begin()) return nullptr;
  --it;
  return addr == it->second.base + it->second.size ? &it->second : nullptr;
}

Reservation *AddressSpace::requireRange(uint64_t addr, uint64_t size, const std::string &what, Err &e) {
  uint64_t end = addr + size;
  Reservation *r = containing(addr);
  if (!r && size == 0) r = containingEnd(addr);
  if (!r) {
    e.fail("ERR_OUT_OF_RESERVATION", what + " [" + Hex(addr) + ", " + Hex(end) + ") is not inside any reservation of this executor");
    return nullptr;
  }
  if (end > r->base + r->size) {
    e.fail("ERR_OUT_OF_RESERVATION", what + " [" + Hex(addr) + ", " + Hex(end) + ") runs " + std::to_string(end - (r->base + r->size)) +
                                         " bytes past the end of its reservation [" + Hex(r->base) + ", " + Hex(r->base + r->size) + ")");
    return nullptr;
  }
  return r;
}

Reservation *AddressSpace::requireAccess(uint64_t addr, uint64_t size, int need, const std::string &what, Err &e) {
  Reservation *r = requireRange(addr, size, what, e);
  if (!r || size == 0) return r;
  uint64_t lo = addr - addr % pageSize;
  uint64_t hi = AlignUp(addr + size, pageSize);
  struct Piece {
    uint64_t start, end;
    int prot;
  };
  std::vector<Piece> covered;
  // Regions start on page boundaries and never overlap, so by start they are in order of their
  // page-rounded ends too: the one just below lo, then those starting before hi, are all that can
  // cover [lo, hi). A pass over every region made each copying initialize linear in the regions
  // live in the reservation (with 8,000, most of the executor's time).
  auto it = r->regions.lower_bound(lo);
  if (it != r->regions.begin()) --it;
  for (; it != r->regions.end() && it->second.start < hi; ++it) {
    const Region &region = it->second;
    if (AlignUp(region.end, pageSize) <= lo) continue;
    for (const LiveSegment &s : region.segments) {
      uint64_t sEnd = AlignUp(s.addr + s.size, pageSize);
      if (s.size > 0 && s.addr < hi && sEnd > lo) covered.push_back({std::max(s.addr, lo), std::min(sEnd, hi), s.prot});
    }
  }
  std::sort(covered.begin(), covered.end(), [](const Piece &a, const Piece &b) { return a.start < b.start; });
  auto deny = [&](uint64_t page, int prot) {
    e.fail("ERR_ACCESS_DENIED", what + " [" + Hex(addr) + ", " + Hex(addr + size) + ") needs " + ProtText(need) + " access but the page at " + Hex(page) +
                                    " is " + ProtText(prot));
    return nullptr;
  };
  uint64_t at = lo;
  for (const Piece &c : covered) {
    if (c.start > at && (r->defaultProt & need) != need) return deny(at, r->defaultProt);
    if ((c.prot & need) != need) return deny(c.start, c.prot);
    at = std::max(at, c.end);
  }
  if (at < hi && (r->defaultProt & need) != need) return deny(at, r->defaultProt);
  return r;
}

}  // namespace jitmem
