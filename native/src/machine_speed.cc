// A fixed piece of work, timed: how fast the machine runs at this moment, apart from any code of
// ours. A benchmark's rounds can disagree no less than this work's times do; on a VM whose host
// is shared they do (a fixed loop took 8 ms in some spells of tenths of a second, 11.7 in others).

#include <time.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "jitmem.h"

namespace jitmem {
namespace {

// Past the 1-2 MiB of L2 of today's x86-64 cores and within their L3: the walk stalls on the
// caches and memory a neighbour on the host also uses, as the cells' copies and page tables do.
constexpr size_t kWalkBytes = 4u << 20;
constexpr size_t kLine = 64;
// 1.4-6 ms on a 2-vCPU EPYC VM, as fast as the VM and the other CPU's load let it run.
constexpr int kPasses = 24;

uint8_t *WalkBuffer() {
  static uint8_t *buffer = [] {
    void *p = nullptr;
    if (posix_memalign(&p, 4096, kWalkBytes) != 0) return static_cast<uint8_t *>(nullptr);
    memset(p, 1, kWalkBytes);  // every page touched once, here, not in the first timing
    return static_cast<uint8_t *>(p);
  }();
  return buffer;
}

double Now(clockid_t clock) {
  timespec t;
  clock_gettime(clock, &t);
  return static_cast<double>(t.tv_sec) * 1e9 + static_cast<double>(t.tv_nsec);
}

// machineSpeedWalk(): { wallNs, cpuNs, bytes, passes } of one walk. cpuNs is this thread's CPU
// time over the walk: near wallNs when the CPU itself ran slow, well below it when the thread
// waited for the CPU (another process had it).
Napi::Value MachineSpeedWalk(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  uint8_t *b = WalkBuffer();
  if (b == nullptr) return ThrowErrno(env, "posix_memalign", "size=" + std::to_string(kWalkBytes), ENOMEM);
  uint64_t sum = 0;
  double wall0 = Now(CLOCK_MONOTONIC), cpu0 = Now(CLOCK_THREAD_CPUTIME_ID);
  for (int pass = 0; pass < kPasses; pass++) {
    for (size_t i = 0; i < kWalkBytes; i += kLine) {
      // Read and write each line: the sum depends on every load, so no pass can be left out.
      sum += b[i];
      b[i] = static_cast<uint8_t>(sum);
    }
  }
  double cpu1 = Now(CLOCK_THREAD_CPUTIME_ID), wall1 = Now(CLOCK_MONOTONIC);
  Napi::Object out = Napi::Object::New(env);
  out.Set("wallNs", wall1 - wall0);
  out.Set("cpuNs", cpu1 - cpu0);
  out.Set("bytes", static_cast<double>(kWalkBytes));
  out.Set("passes", kPasses);
  // Kept observable, so that the compiler keeps the loop.
  out.Set("checksum", static_cast<double>(sum & 0xffff));
  return out;
}

}  // namespace

void RegisterMachineSpeed(Napi::Env env, Napi::Object exports) {
  exports.Set("machineSpeedWalk", Napi::Function::New(env, MachineSpeedWalk));
}

}  // namespace jitmem
