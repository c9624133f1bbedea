// The alloc actions jitmem provides, as real C functions with LLVM's wrapper ABI, so that an
// action is just an address wherever it runs: the in-process mapper calls them in the
// controller, and the executor advertises their addresses under LLVM's names. Shared by the
// addon and the native executor (runtime.h).

#include <unwind.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "runtime.h"

extern "C" {
// libgcc's unwinder entry points.
void __register_frame(void *begin) __attribute__((weak));
void __deregister_frame(void *begin) __attribute__((weak));
}

namespace jitmem {

JitmemWrapperResult SpsErrorResult(const std::string &error) {
  JitmemWrapperResult r;
  memset(&r, 0, sizeof r);
  if (error.empty()) {
    r.Size = 1;  // SPSError success: the single byte 00, stored inline
    return r;
  }
  size_t n = 1 + 8 + error.size();
  char *p = static_cast<char *>(malloc(n));
  if (!p) return r;  // Size 0 and null pointer: an empty result, which decodes as failure
  p[0] = 1;
  uint64_t len = error.size();
  memcpy(p + 1, &len, 8);
  memcpy(p + 9, error.data(), error.size());
  r.Data.ValuePtr = p;
  r.Size = n;
  return r;
}

namespace {

bool ReadU64(const char *&p, size_t &left, uint64_t &out) {
  if (left < 8) return false;
  memcpy(&out, p, 8);
  p += 8;
  left -= 8;
  return true;
}

std::string HexText(uint64_t v) {
  char buf[32];
  snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

_Unwind_Reason_Code CountFrame(struct _Unwind_Context *, void *count) {
  ++*static_cast<int *>(count);
  return _URC_NO_REASON;
}

}  // namespace

int UnwindProbe() {
  int frames = 0;
  _Unwind_Backtrace(CountFrame, &frames);
  return frames;
}

}  // namespace jitmem

using jitmem::SpsErrorResult;

// args: SPSExecutorAddrRange (start, end) of an .eh_frame section.
extern "C" JitmemWrapperResult jitmem_register_eh_frame_action(const char *data, size_t size) {
  uint64_t start, end;
  if (!jitmem::ReadU64(data, size, start) || !jitmem::ReadU64(data, size, end) || end < start)
    return SpsErrorResult("jitmem_register_eh_frame_action: expected an address range (16 bytes)");
  if (!__register_frame) return SpsErrorResult("__register_frame is not available in this process");
  if (end > start) __register_frame(reinterpret_cast<void *>(static_cast<uintptr_t>(start)));
  return SpsErrorResult("");
}

extern "C" JitmemWrapperResult jitmem_deregister_eh_frame_action(const char *data, size_t size) {
  uint64_t start, end;
  if (!jitmem::ReadU64(data, size, start) || !jitmem::ReadU64(data, size, end) || end < start)
    return SpsErrorResult("jitmem_deregister_eh_frame_action: expected an address range (16 bytes)");
  if (!__deregister_frame) return SpsErrorResult("__deregister_frame is not available in this process");
  if (end > start) __deregister_frame(reinterpret_cast<void *>(static_cast<uintptr_t>(start)));
  return SpsErrorResult("");
}

// args: (addr log, u64 capacity, u64 value). The log is a u64 count followed by `capacity`
// u64 slots in target memory; the action appends `value`. It makes the order in which alloc
// actions run observable in executor memory; a full log is an error, not an overrun.
extern "C" JitmemWrapperResult jitmem_trace_action(const char *data, size_t size) {
  uint64_t log, capacity, value;
  if (!jitmem::ReadU64(data, size, log) || !jitmem::ReadU64(data, size, capacity) || !jitmem::ReadU64(data, size, value) || log == 0 || log % 8 != 0)
    return SpsErrorResult("jitmem_trace_action: expected (8-aligned log address, u64 capacity, u64 value)");
  uint64_t *slots = reinterpret_cast<uint64_t *>(static_cast<uintptr_t>(log));
  uint64_t n = slots[0];
  if (n >= capacity)
    return SpsErrorResult("jitmem_trace_action: trace log at " + jitmem::HexText(log) + " is full (" + std::to_string(capacity) + " entries)");
  slots[1 + n] = value;
  slots[0] = n + 1;
  return SpsErrorResult("");
}

// args: anything. Always fails with a fixed message: lets tests see a failing finalize action
// unwind the actions that ran before it.
extern "C" JitmemWrapperResult jitmem_fail_action(const char *, size_t) { return SpsErrorResult("jitmem_fail_action: this action always fails"); }
