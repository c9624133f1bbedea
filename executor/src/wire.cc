// SPS reading and writing (docs/wire-protocol.md §2), with the messages the TypeScript side of the
// wire gives.

#include <cstdio>
#include <cstring>

#include "executor.h"

namespace jitmem {

std::string Hex(uint64_t v) {
  char buf[32];
  snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string ProtText(int prot) {
  std::string s;
  s += prot & PROT_R_ ? 'r' : '-';
  s += prot & PROT_W_ ? 'w' : '-';
  s += prot & PROT_X_ ? 'x' : '-';
  return s;
}

bool Reader::malformed(const std::string &message) {
  return err_.fail("ERR_SPS_MALFORMED", "malformed " + what_ + " at byte offset " + std::to_string(pos_) + ": " + message);
}

bool Reader::need(size_t k, const char *what) {
  if (err_.set) return false;
  if (n_ - pos_ < k) {
    return malformed(std::string(what) + " needs " + std::to_string(k) + " bytes but only " + std::to_string(n_ - pos_) + " remain");
  }
  return true;
}

uint8_t Reader::u8() {
  if (!need(1, "a u8")) return 0;
  return b_[pos_++];
}

bool Reader::boolean() {
  if (!need(1, "a bool")) return false;
  uint8_t v = b_[pos_];
  if (v > 1) {
    malformed("a bool must be 0 or 1; got " + std::to_string(v));
    return false;
  }
  pos_++;
  return v == 1;
}

int32_t Reader::i32() {
  if (!need(4, "an i32")) return 0;
  int32_t v;
  memcpy(&v, b_ + pos_, 4);
  pos_ += 4;
  return v;
}

uint64_t Reader::u64Big() {
  if (!need(8, "a u64")) return 0;
  uint64_t v;
  memcpy(&v, b_ + pos_, 8);
  pos_ += 8;
  return v;
}

uint64_t Reader::u64(const char *what) {
  if (!need(8, what)) return 0;
  uint64_t v;
  memcpy(&v, b_ + pos_, 8);
  if (v > kMaxSafe) {
    malformed(std::string(what) + " of " + Hex(v) + " is beyond 2^53");
    return 0;
  }
  pos_ += 8;
  return v;
}

uint64_t Reader::count(size_t minElement) {
  size_t at = pos_;
  uint64_t n = u64("a sequence count");
  if (err_.set) return 0;
  // n * minElement may overflow 64 bits only past 2^53 * 25; compare by division instead.
  if (minElement > 0 && n > (n_ - pos_) / minElement) {
    pos_ = at;
    malformed("a sequence of " + std::to_string(n) + " elements of at least " + std::to_string(minElement) + " bytes each needs more than the " +
              std::to_string(n_ - at - 8) + " bytes that remain");
    return 0;
  }
  return n;
}

Bytes Reader::raw(size_t n) {
  Bytes out;
  if (!need(n, (std::to_string(n) + " bytes").c_str())) return out;
  out.data = b_ + pos_;
  out.size = n;
  pos_ += n;
  return out;
}

Bytes Reader::bytes() {
  uint64_t n = count(1);
  if (err_.set) return Bytes();
  return raw(n);
}

std::string Reader::string() {
  Bytes b = bytes();
  return std::string(reinterpret_cast<const char *>(b.data ? b.data : reinterpret_cast<const uint8_t *>("")), b.size);
}

uint8_t Reader::allocGroup() {
  size_t at = pos_;
  uint8_t id = u8();
  if (err_.set) return 0;
  if (id > 15) {
    pos_ = at;
    malformed("an SPSRemoteAllocGroup must be 0..15 (prot | finalize << 3); got " + std::to_string(id));
    return 0;
  }
  return id;
}

void Reader::end() {
  if (err_.set) return;
  if (pos_ != n_) malformed(std::to_string(n_ - pos_) + " unexpected trailing bytes");
}

Writer &Writer::u64(uint64_t v) {
  memcpy(grow(8), &v, 8);
  return *this;
}

Writer &Writer::i32(int32_t v) {
  memcpy(grow(4), &v, 4);
  return *this;
}

Writer &Writer::raw(const void *p, size_t n) {
  if (n > 0) memcpy(grow(n), p, n);
  return *this;
}

}  // namespace jitmem
