// SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104): the integrity checksums and the TCP token
// challenge. Written here so the executor needs nothing beyond libc, libstdc++ and libgcc.

#include <cstring>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

#include "executor.h"

namespace jitmem {
namespace {

const uint32_t kK[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74,
    0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d,
    0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e,
    0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5,
    0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

inline uint32_t Rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

// x86-64's SHA extensions, with the SSSE3 and SSE4.1 shuffles and blends around them. The bench
// checks the executor's memory by its hash: 6.5 MB for CPython, which the portable rounds below
// take about 30 ms over on this machine's EPYC (0.23 GB/s) and these about 4 (1.5 GB/s).
bool CpuHasShaExtensions() {
#if defined(__x86_64__)
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
  const bool ssse3 = c & (1u << 9), sse41 = c & (1u << 19);
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  return ssse3 && sse41 && (b & (1u << 29));
#else
  return false;
#endif
}

const bool kShaExtensions = CpuHasShaExtensions();

#if defined(__x86_64__)
// `n` 64-byte blocks into `h`. The rounds instruction keeps the eight state words as two
// vectors, ABEF and CDGH, and takes the message words with their round constants added, two
// rounds at a time; the message schedule extends four words at a time (msg1 and msg2 give
// sigma0 and sigma1 of FIPS 180-4's recurrence).
__attribute__((target("sha,ssse3,sse4.1"))) void ShaExtensionBlocks(uint32_t h[8], const uint8_t *p, size_t n) {
  const __m128i bigEndianWords = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
  __m128i cdab = _mm_shuffle_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i *>(h)), 0xB1);
  __m128i efgh = _mm_shuffle_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i *>(h + 4)), 0x1B);
  __m128i abef = _mm_alignr_epi8(cdab, efgh, 8);
  __m128i cdgh = _mm_blend_epi16(efgh, cdab, 0xF0);
  for (; n > 0; n--, p += 64) {
    const __m128i abefBefore = abef, cdghBefore = cdgh;
    // w[g % 4]: message words 4g..4g+3 while group g's rounds run.
    __m128i w[4];
    for (int g = 0; g < 16; g++) {
      __m128i &words = w[g & 3];
      if (g < 4) {
        words = _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i *>(p + 16 * g)), bigEndianWords);
      } else {
        // W[t] = sigma1(W[t-2]) + W[t-7] + sigma0(W[t-15]) + W[t-16], for t = 4g..4g+3.
        __m128i sum = _mm_sha256msg1_epu32(words, w[(g + 1) & 3]);
        sum = _mm_add_epi32(sum, _mm_alignr_epi8(w[(g + 3) & 3], w[(g + 2) & 3], 4));
        words = _mm_sha256msg2_epu32(sum, w[(g + 3) & 3]);
      }
      const __m128i wk = _mm_add_epi32(words, _mm_loadu_si128(reinterpret_cast<const __m128i *>(kK + 4 * g)));
      cdgh = _mm_sha256rnds2_epu32(cdgh, abef, wk);
      abef = _mm_sha256rnds2_epu32(abef, cdgh, _mm_shuffle_epi32(wk, 0x0E));
    }
    abef = _mm_add_epi32(abef, abefBefore);
    cdgh = _mm_add_epi32(cdgh, cdghBefore);
  }
  const __m128i feba = _mm_shuffle_epi32(abef, 0x1B);
  const __m128i dchg = _mm_shuffle_epi32(cdgh, 0xB1);
  _mm_storeu_si128(reinterpret_cast<__m128i *>(h), _mm_blend_epi16(feba, dchg, 0xF0));
  _mm_storeu_si128(reinterpret_cast<__m128i *>(h + 4), _mm_alignr_epi8(dchg, feba, 8));
}
#endif

}  // namespace

Sha256::Sha256(bool portable) : shaExtensions_(kShaExtensions && !portable) {
  const uint32_t init[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  memcpy(h_, init, sizeof h_);
}

bool Sha256::shaExtensionsAvailable() { return kShaExtensions; }

void Sha256::blocks(const uint8_t *p, size_t n) {
#if defined(__x86_64__)
  if (shaExtensions_) {
    ShaExtensionBlocks(h_, p, n);
    return;
  }
#endif
  for (; n > 0; n--, p += 64) block(p);
}

void Sha256::block(const uint8_t *p) {
  uint32_t w[64];
  for (int i = 0; i < 16; i++) w[i] = (uint32_t(p[4 * i]) << 24) | (uint32_t(p[4 * i + 1]) << 16) | (uint32_t(p[4 * i + 2]) << 8) | p[4 * i + 3];
  for (int i = 16; i < 64; i++) {
    uint32_t s0 = Rotr(w[i - 15], 7) ^ Rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = Rotr(w[i - 2], 17) ^ Rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = h_[0], b = h_[1], c = h_[2], d = h_[3], e = h_[4], f = h_[5], g = h_[6], h = h_[7];
  for (int i = 0; i < 64; i++) {
    uint32_t S1 = Rotr(e, 6) ^ Rotr(e, 11) ^ Rotr(e, 25);
    uint32_t ch = (e & f) ^ (~e & g);
    uint32_t t1 = h + S1 + ch + kK[i] + w[i];
    uint32_t S0 = Rotr(a, 2) ^ Rotr(a, 13) ^ Rotr(a, 22);
    uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
    uint32_t t2 = S0 + maj;
    h = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  h_[0] += a;
  h_[1] += b;
  h_[2] += c;
  h_[3] += d;
  h_[4] += e;
  h_[5] += f;
  h_[6] += g;
  h_[7] += h;
}

void Sha256::update(const void *data, size_t n) {
  if (n == 0) return;
  const uint8_t *p = static_cast<const uint8_t *>(data);
  total_ += n;
  if (used_ > 0) {
    size_t take = n < 64 - used_ ? n : 64 - used_;
    memcpy(buf_ + used_, p, take);
    used_ += take;
    p += take;
    n -= take;
    if (used_ < 64) return;
    blocks(buf_, 1);
    used_ = 0;
  }
  blocks(p, n / 64);
  p += n / 64 * 64;
  n %= 64;
  if (n > 0) {
    memcpy(buf_, p, n);
    used_ = n;
  }
}

void Sha256::digest(uint8_t out[32]) {
  uint64_t bits = total_ * 8;
  uint8_t pad[72] = {0x80};
  size_t padLen = used_ < 56 ? 56 - used_ : 120 - used_;
  update(pad, padLen);
  uint8_t len[8];
  for (int i = 0; i < 8; i++) len[i] = static_cast<uint8_t>(bits >> (56 - 8 * i));
  update(len, 8);
  for (int i = 0; i < 8; i++) {
    out[4 * i] = static_cast<uint8_t>(h_[i] >> 24);
    out[4 * i + 1] = static_cast<uint8_t>(h_[i] >> 16);
    out[4 * i + 2] = static_cast<uint8_t>(h_[i] >> 8);
    out[4 * i + 3] = static_cast<uint8_t>(h_[i]);
  }
}

void HmacSha256Two(const uint8_t *key, size_t keyLen, const uint8_t *a, size_t aLen, const uint8_t *b, size_t bLen, uint8_t out[32]) {
  uint8_t k[64] = {0};
  if (keyLen > 64) {
    Sha256 kh;
    kh.update(key, keyLen);
    kh.digest(k);
  } else if (keyLen > 0) {
    memcpy(k, key, keyLen);
  }
  uint8_t ipad[64], opad[64];
  for (int i = 0; i < 64; i++) {
    ipad[i] = k[i] ^ 0x36;
    opad[i] = k[i] ^ 0x5c;
  }
  uint8_t inner[32];
  Sha256 ih;
  ih.update(ipad, 64);
  ih.update(a, aLen);
  ih.update(b, bLen);
  ih.digest(inner);
  Sha256 oh;
  oh.update(opad, 64);
  oh.update(inner, 32);
  oh.digest(out);
}

void HmacSha256(const uint8_t *key, size_t keyLen, const uint8_t *msg, size_t msgLen, uint8_t out[32]) { HmacSha256Two(key, keyLen, msg, msgLen, nullptr, 0, out); }

}  // namespace jitmem
