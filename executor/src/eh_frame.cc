// A parse of an .eh_frame section before it goes to the process's unwinder, and the registry of
// the frames handed to it. libgcc's __register_frame only stores the pointer; the records are
// read later, lazily, the next time anything in the process unwinds, and read trustingly: a
// record length that runs on, an FDE's CIE pointer that points anywhere, a pointer encoding it
// does not know (abort). So every record is checked here as libgcc will read it, and the code
// ranges the FDEs claim must lie in memory this executor owns. A registered frame must lie in a
// live segment no request can write, and is taken back before its memory changes or goes.
//
// Not checked: the call-frame instructions themselves; they run only when the unwinder walks
// through a pc of this frame's FDEs, which lie in JIT'd code, whose correctness is its own.

#include <cstring>
#include <map>

#include "executor.h"

extern "C" {
void __register_frame(void *begin) __attribute__((weak));
void __deregister_frame(void *begin) __attribute__((weak));
}

namespace jitmem {
namespace {

constexpr int kOmit = 0xff;
constexpr int kIndirect = 0x80;

// Pointer formats libgcc reads (low nibble): size in bytes, -1 for LEB128, 0 for unknown.
int FormatSize(int format) {
  switch (format) {
    case 0x00: return 8;
    case 0x01: return -1;
    case 0x02: return 2;
    case 0x03: return 4;
    case 0x04: return 8;
    case 0x09: return -1;
    case 0x0a: return 2;
    case 0x0b: return 4;
    case 0x0c: return 8;
    default: return 0;
  }
}

struct Cie {
  int fdeEncoding = 0;
  bool hasAugmentationData = false;
};

// Reads one record; the first failure sticks in `msg`.
struct Cursor {
  const uint8_t *bytes;
  size_t pos, end;
  std::string *msg;

  bool bad() const { return !msg->empty(); }
  bool fail(const std::string &m) {
    if (msg->empty()) *msg = m;
    return false;
  }
  bool need(size_t n, const std::string &what) {
    if (bad()) return false;
    if (pos + n > end) return fail(what + " runs past the end of its record");
    return true;
  }
  uint8_t u8(const std::string &what) {
    if (!need(1, what)) return 0;
    return bytes[pos++];
  }
  // A LEB128 number of at most 10 bytes (as a signed 64-bit value).
  int64_t leb(const std::string &what, bool isSigned) {
    uint64_t result = 0;
    int shift = 0;
    for (int i = 0; i < 10; i++) {
      uint8_t b = u8(what);
      if (bad()) return 0;
      if (shift < 64) result |= static_cast<uint64_t>(b & 0x7f) << shift;
      shift += 7;
      if ((b & 0x80) == 0) {
        if (isSigned && (b & 0x40) && shift < 64) result |= ~0ull << shift;
        return static_cast<int64_t>(result);
      }
    }
    fail(what + " is a LEB128 number longer than 10 bytes");
    return 0;
  }
  std::string cstring(const std::string &what) {
    if (bad()) return "";
    const void *nul = pos < end ? memchr(bytes + pos, 0, end - pos) : nullptr;
    if (!nul) {
      fail(what + " has no NUL inside its record");
      return "";
    }
    size_t at = static_cast<const uint8_t *>(nul) - bytes;
    std::string s(reinterpret_cast<const char *>(bytes + pos), at - pos);
    pos = at + 1;
    return s;
  }
  // A pointer as libgcc's read_encoded_value reads it; fieldAddr is the field's executor address (pcrel).
  int64_t encoded(int encoding, uint64_t fieldAddr, const std::string &what) {
    int format = encoding & 0x0f;
    int size = FormatSize(format);
    if (size == 0) {
      fail(what + " uses pointer encoding " + Hex(encoding) + ", which the unwinder does not know");
      return 0;
    }
    int64_t value = 0;
    if (size < 0) {
      value = leb(what, format == 0x09);
    } else {
      if (!need(size, what)) return 0;
      const uint8_t *p = bytes + pos;
      if (size == 2) {
        uint16_t v;
        memcpy(&v, p, 2);
        value = format == 0x0a ? static_cast<int16_t>(v) : v;
      } else if (size == 4) {
        uint32_t v;
        memcpy(&v, p, 4);
        value = format == 0x0b ? static_cast<int32_t>(v) : static_cast<int64_t>(v);
      } else {
        memcpy(&value, p, 8);
      }
      pos += size;
    }
    return (encoding & 0x70) == 0x10 ? static_cast<int64_t>(fieldAddr) + value : value;
  }
};

bool CheckEncoding(int encoding, const std::string &what, bool allowIndirect, Cursor &c) {
  if (encoding == kOmit) return true;
  if (FormatSize(encoding & 0x0f) == 0) return c.fail(what + " " + Hex(encoding) + " has a pointer format the unwinder does not know");
  int application = encoding & 0x70;
  if (application != 0x00 && application != 0x10)
    return c.fail(what + " " + Hex(encoding) + " is relative to a base registered frames do not have (only absolute and pc-relative pointers are accepted)");
  if ((encoding & kIndirect) && !allowIndirect) return c.fail(what + " " + Hex(encoding) + " is indirect, which only a personality pointer may be");
  return true;
}

bool AugmentationOk(const std::string &a) {
  if (a.empty()) return true;
  if (a[0] != 'z') return false;
  bool seen[3] = {false, false, false};
  size_t i = 1;
  for (; i < a.size(); i++) {
    int k = a[i] == 'P' ? 0 : a[i] == 'L' ? 1 : a[i] == 'R' ? 2 : -1;
    if (k < 0) break;
    if (seen[k]) return false;
    seen[k] = true;
  }
  if (i < a.size() && a[i] == 'S') i++;
  return i == a.size();
}

Cie ParseCie(Cursor &c) {
  Cie cie;
  uint8_t version = c.u8("the CIE version");
  if (c.bad()) return cie;
  if (version != 1 && version != 3) {
    c.fail("CIE version " + std::to_string(version) + "; the unwinder reads versions 1 and 3");
    return cie;
  }
  std::string aug = c.cstring("the augmentation string");
  if (c.bad()) return cie;
  if (!AugmentationOk(aug)) {
    c.fail("augmentation \"" + aug + "\"; accepted: \"\" or \"z\" followed by each of P, L, R at most once, then optionally S");
    return cie;
  }
  c.leb("the code alignment factor", false);
  c.leb("the data alignment factor", true);
  if (version == 1) c.u8("the return address register");
  else c.leb("the return address register", false);
  if (aug.empty() || c.bad()) return cie;
  int64_t dataLength = c.leb("the augmentation data length", false);
  if (dataLength < 0) dataLength = static_cast<int64_t>(c.end);  // forces the overrun message below
  if (!c.need(static_cast<size_t>(dataLength), "the augmentation data")) return cie;
  size_t dataEnd = c.pos + static_cast<size_t>(dataLength);
  Cursor d{c.bytes, c.pos, dataEnd, c.msg};
  for (size_t i = 1; i < aug.size() && !d.bad(); i++) {
    char ch = aug[i];
    if (ch == 'R') {
      cie.fdeEncoding = d.u8("the FDE pointer encoding");
      if (d.bad()) break;
      if (cie.fdeEncoding == kOmit) {
        d.fail("the FDE pointer encoding is \"omit\", which leaves FDEs without a pc");
        break;
      }
      if (!CheckEncoding(cie.fdeEncoding, "the FDE pointer encoding", false, d)) break;
      if (FormatSize(cie.fdeEncoding & 0x0f) < 0) d.fail("the FDE pointer encoding " + Hex(cie.fdeEncoding) + " is LEB128, which the unwinder cannot size");
    } else if (ch == 'P') {
      int enc = d.u8("the personality encoding");
      if (d.bad()) break;
      if (enc == kOmit) {
        d.fail("the personality encoding is \"omit\" while \"P\" says there is one");
        break;
      }
      if (!CheckEncoding(enc, "the personality encoding", true, d)) break;
      d.encoded(enc & 0x7f, 0, "the personality pointer");
    } else if (ch == 'L') {
      int enc = d.u8("the LSDA encoding");
      if (!d.bad()) CheckEncoding(enc, "the LSDA encoding", false, d);
    }
  }
  c.pos = dataEnd;
  cie.hasAugmentationData = true;
  return cie;
}

uint32_t U32At(const std::vector<uint8_t> &b, size_t at) {
  uint32_t v;
  memcpy(&v, b.data() + at, 4);
  return v;
}

}  // namespace

// Parses bytes (the section from its start, possibly with the 4 bytes after it).
static bool ParseEHFrame(const std::vector<uint8_t> &bytes, uint64_t sectionAddr, uint64_t sectionSize, AddressSpace &space, const std::string &what,
                         uint64_t &walked, Err &e) {
  std::map<size_t, Cie> cies;
  std::vector<size_t> fdes;
  size_t at = 0;
  std::string msg;
  auto failAt = [&](const std::string &m) {
    return e.fail("ERR_INVALID_EH_FRAME", what + ": EH-frame record at " + Hex(sectionAddr + at) + " (offset " + std::to_string(at) + " of [" + Hex(sectionAddr) +
                                              ", " + Hex(sectionAddr + sectionSize) + ")): " + m);
  };
  for (;;) {
    if (at + 4 > bytes.size() || at > sectionSize) return failAt("the section has no zero terminator inside or right after it");
    uint32_t length = U32At(bytes, at);
    if (length == 0) {
      at += 4;
      break;
    }
    if (at + 4 > sectionSize) return failAt("a record starts past the end of the section");
    if (length == 0xffffffffu) return failAt("a 64-bit length, which this executor does not register");
    if (length < 4) return failAt("a length of " + std::to_string(length) + " bytes leaves no room for the CIE id");
    uint64_t end = at + 4 + static_cast<uint64_t>(length);
    if (end > sectionSize) return failAt("its length " + std::to_string(length) + " runs " + std::to_string(end - sectionSize) + " bytes past the end of the section");
    uint32_t id = U32At(bytes, at + 4);
    if (id == 0) {
      Cursor c{bytes.data(), at + 8, static_cast<size_t>(end), &msg};
      Cie cie = ParseCie(c);
      if (!msg.empty()) return failAt(msg);
      cies[at] = cie;
    } else {
      fdes.push_back(at);
    }
    at = static_cast<size_t>(end);
  }
  walked = at;
  for (size_t fdeAt : fdes) {
    auto failFde = [&](const std::string &m) {
      return e.fail("ERR_INVALID_EH_FRAME", what + ": EH-frame FDE at " + Hex(sectionAddr + fdeAt) + " (offset " + std::to_string(fdeAt) + "): " + m);
    };
    size_t end = fdeAt + 4 + U32At(bytes, fdeAt);
    uint32_t ciePointer = U32At(bytes, fdeAt + 4);
    int64_t cieAt = static_cast<int64_t>(fdeAt) + 4 - static_cast<int64_t>(ciePointer);
    auto it = cieAt >= 0 ? cies.find(static_cast<size_t>(cieAt)) : cies.end();
    if (it == cies.end())
      return failFde("its CIE pointer " + std::to_string(ciePointer) + " leads to offset " + std::to_string(cieAt) + ", which is not the start of a CIE of this section");
    const Cie &cie = it->second;
    Cursor c{bytes.data(), fdeAt + 8, end, &msg};
    uint64_t pcField = sectionAddr + c.pos;
    int64_t rawBegin = c.encoded(cie.fdeEncoding & 0x0f, 0, "pc_begin");
    int64_t pcBegin = (cie.fdeEncoding & 0x70) == 0x10 ? static_cast<int64_t>(pcField) + rawBegin : rawBegin;
    int64_t range = c.encoded(cie.fdeEncoding & 0x0f, 0, "pc_range");
    if (cie.hasAugmentationData) {
      int64_t n = c.leb("the augmentation data length", false);
      if (n < 0) n = static_cast<int64_t>(end);
      c.need(static_cast<size_t>(n), "the augmentation data");
    }
    if (!msg.empty()) return failFde(msg);
    // An FDE of a discarded function: libgcc skips a pc_begin of 0 (in the bits the encoding
    // holds); a pc-relative pointer resolved to 0 points at itself and covers no code.
    int width = FormatSize(cie.fdeEncoding & 0x0f);
    uint64_t low = width >= 8 ? static_cast<uint64_t>(pcBegin) : static_cast<uint64_t>(pcBegin) & ((1ull << (8 * width)) - 1);
    if (low == 0 || rawBegin == 0) continue;
    bool inRange = false;
    if (pcBegin >= 0 && range >= 0 && static_cast<uint64_t>(pcBegin) <= kMaxSafe && static_cast<uint64_t>(range) <= kMaxSafe) {
      uint64_t lo = static_cast<uint64_t>(pcBegin), hi = lo + static_cast<uint64_t>(range);
      Reservation *r = space.containing(lo);
      inRange = r != nullptr && hi <= r->base + r->size;
    }
    if (!inRange)
      return failFde("it describes code at [" + Hex(pcBegin < 0 ? 0 : static_cast<uint64_t>(pcBegin)) + ", +" + std::to_string(range) + "), which is not memory of this executor");
  }
  return true;
}

bool EHFrameRegistry::read(uint64_t start, uint64_t end, const std::string &what, std::vector<uint8_t> &out, Err &e) {
  if (!space_.requireAccess(start, end - start, PROT_R_, what + ": EH-frame section", e)) return false;
  uint64_t n = end - start;
  Err probe;
  if (space_.requireAccess(start, n + 4, PROT_R_, what + ": EH-frame terminator", probe)) n += 4;
  // The unwinder reads the section long after this check: it must be in a read-only segment.
  uint64_t page = space_.pageSize;
  for (uint64_t p = start - start % page; p < start + n; p += page) {
    Err w;
    if (space_.requireAccess(p, 1, PROT_W_, what, w)) {
      return e.fail("ERR_INVALID_EH_FRAME", what + ": the EH-frame section [" + Hex(start) + ", " + Hex(start + n) + ") lies in writable memory (the page at " + Hex(p) +
                                                "); the unwinder reads it lazily, so it must be in a read-only segment");
    }
  }
  out.resize(n);
  if (n > 0) memcpy(out.data(), reinterpret_cast<const void *>(start), n);
  return true;
}

bool EHFrameRegistry::check(uint64_t start, uint64_t end, const std::string &what, uint64_t &walked, Err &e) {
  if (end < start) return e.fail("ERR_INVALID_EH_FRAME", what + ": EH-frame range [" + Hex(start) + ", " + Hex(end) + ") ends before it starts");
  if (frames_.count(start))
    return e.fail("ERR_EH_FRAME_ALREADY_REGISTERED", what + ": the EH frame at " + Hex(start) + " is already registered; deregister it first");
  std::vector<uint8_t> bytes;
  if (!read(start, end, what, bytes, e)) return false;
  return ParseEHFrame(bytes, start, end - start, space_, what, walked, e);
}

bool EHFrameRegistry::registerFrame(uint64_t start, uint64_t end, const std::string &what, Err &e) {
  uint64_t walked = 0;
  if (!check(start, end, what, walked, e)) return false;
  bool empty = walked == 4;
  if (!empty) {
    if (!__register_frame) return e.fail("ERR_EH_FRAME_UNSUPPORTED", what + ": __register_frame is not available in this process");
    __register_frame(reinterpret_cast<void *>(start));
  }
  frames_[start] = {start, start + walked, empty};
  longest_ = std::max(longest_, walked);
  return true;
}

bool EHFrameRegistry::deregisterFrame(uint64_t start, uint64_t end, const std::string &what, Err &e) {
  if (!frames_.count(start))
    return e.fail("ERR_EH_FRAME_NOT_REGISTERED", what + ": no EH frame is registered at " + Hex(start) + " (range [" + Hex(start) + ", " + Hex(end) +
                                                     ")); deregistering it would abort the process");
  take(start);
  return true;
}

// A frame that reaches past lo starts after lo - longest_: the frames met from there on, up to
// hi, are the only ones a range can meet. A pass over every frame made each deinitialize linear
// in the frames registered (one per object of C++, thousands in a large program).
std::map<uint64_t, EHFrameRegistry::Registered>::const_iterator EHFrameRegistry::firstReaching(uint64_t lo) const {
  return lo > longest_ ? frames_.upper_bound(lo - longest_) : frames_.begin();
}

bool EHFrameRegistry::overlaps(uint64_t lo, uint64_t hi) const {
  for (auto it = firstReaching(lo); it != frames_.end() && it->second.start < hi; ++it)
    if (lo < it->second.end) return true;
  return false;
}

int EHFrameRegistry::releaseWithin(uint64_t lo, uint64_t hi) {
  std::vector<uint64_t> starts;
  for (auto it = firstReaching(lo); it != frames_.end() && it->second.start < hi; ++it)
    if (lo < it->second.end) starts.push_back(it->first);
  for (uint64_t s : starts) take(s);
  return static_cast<int>(starts.size());
}

void EHFrameRegistry::releaseAll() {
  while (!frames_.empty()) take(frames_.begin()->first);
}

void EHFrameRegistry::take(uint64_t start) {
  auto it = frames_.find(start);
  if (it == frames_.end()) return;
  bool empty = it->second.empty;
  frames_.erase(it);
  if (!empty && __deregister_frame) __deregister_frame(reinterpret_cast<void *>(start));
}

}  // namespace jitmem
