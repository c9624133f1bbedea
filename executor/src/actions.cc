// The executor's side of running alloc actions (docs/wire-protocol.md §5.6): C wrapper functions
// that return an SPSError. An action is called only if it is one of jitmem's own actions, with
// arguments that name memory this executor owns, or lies in an executable page the controller
// initialized (JIT'd code). Any other address would be a jump into the unknown, which LLVM's
// executor makes and we refuse. Every action of a request is checked before the request changes
// anything (checkRequest), against the memory as it will be once the region is live; the checks
// that need the memory's contents (a trace log's count, an EH frame's records) run again just
// before each call. EH-frame registration goes through the registry, which parses first.

#include <cstdlib>
#include <cstring>

#include "executor.h"
#include "runtime.h"

namespace jitmem {
namespace {

uint64_t Addr(void *p) { return reinterpret_cast<uintptr_t>(p); }
uint64_t RegisterEH() { return Addr(reinterpret_cast<void *>(&jitmem_register_eh_frame_action)); }
uint64_t DeregisterEH() { return Addr(reinterpret_cast<void *>(&jitmem_deregister_eh_frame_action)); }
uint64_t Trace() { return Addr(reinterpret_cast<void *>(&jitmem_trace_action)); }
uint64_t Fail() { return Addr(reinterpret_cast<void *>(&jitmem_fail_action)); }

}  // namespace

bool ActionSite::traceLog(const WrapperCall &call, const std::string &what, uint64_t &log, uint64_t &capacity, Err &e) {
  Reader r(call.args.data(), call.args.size(), "arguments of " + what);
  log = r.addr("the trace log address");
  capacity = r.u64("the trace log capacity");
  r.u64Big();
  r.end();
  if (!r.ok()) return e.fail(r.error().code.c_str(), r.error().message);
  if (log % 8 != 0) return e.fail("ERR_ACTION_REFUSED", what + ": trace log address " + Hex(log) + " is not 8-byte aligned");
  return space.requireAccess(log, 8, PROT_R_ | PROT_W_, what + ": trace log header", e) != nullptr;
}

bool ActionSite::ehRange(const WrapperCall &call, const std::string &what, uint64_t &start, uint64_t &end, Err &e) {
  Reader r(call.args.data(), call.args.size(), "arguments of " + what);
  start = r.addr("a range start");
  end = r.addr("a range end");
  r.end();
  if (!r.ok()) return e.fail(r.error().code.c_str(), r.error().message);
  if (end < start) return e.fail("ERR_ACTION_REFUSED", what + ": EH-frame range [" + Hex(start) + ", " + Hex(end) + ") ends before it starts");
  return space.requireAccess(start, end - start, PROT_R_, what + ": EH-frame section", e) != nullptr;
}

bool ActionSite::checkStatic(const WrapperCall &call, const std::string &what, bool finalize, std::set<uint64_t> &registering, Err &e) {
  if (ignored.count(call.fn)) return true;
  if (call.fn == Trace()) {
    uint64_t log, capacity;
    return traceLog(call, what, log, capacity, e);
  }
  if (call.fn == RegisterEH() || call.fn == DeregisterEH()) {
    uint64_t start, end;
    if (!ehRange(call, what, start, end, e)) return false;
    if (call.fn == RegisterEH()) {
      if (finalize) {
        if (frames.has(start) || registering.count(start))
          return e.fail("ERR_EH_FRAME_ALREADY_REGISTERED", what + ": the EH frame at " + Hex(start) + " is already registered; deregister it first");
        registering.insert(start);
      }
    } else if (finalize && !frames.has(start) && !registering.count(start)) {
      return frames.deregisterFrame(start, end, what, e);
    }
    return true;
  }
  if (call.fn == Fail()) return true;
  return space.requireAccess(call.fn, 1, PROT_X_, what + ": function", e) != nullptr;
}

bool ActionSite::checkRequest(const std::vector<ActionPair> &actions, Err &e) {
  std::set<uint64_t> registering;
  for (size_t i = 0; i < actions.size(); i++) {
    const ActionPair &p = actions[i];
    for (int half = 0; half < 2; half++) {
      bool finalize = half == 0;
      if (finalize ? !p.hasFinalize : !p.hasDealloc) continue;
      const WrapperCall &call = finalize ? p.finalize : p.dealloc;
      std::string what = (finalize ? "finalize action " : "dealloc action ") + std::to_string(i);
      Err ce;
      if (checkStatic(call, what, finalize, registering, ce)) continue;
      if (ce.code == "ERR_SPS_MALFORMED") return e.fail("ERR_ACTION_REFUSED", what + " at " + Hex(call.fn) + " was refused: " + ce.message);
      e = ce;
      return false;
    }
  }
  return true;
}

// The checks that need memory contents, just before the call.
bool ActionSite::checkLive(const WrapperCall &call, const std::string &what, Err &e) {
  if (call.fn == Trace()) {
    uint64_t log, capacity;
    if (!traceLog(call, what, log, capacity, e)) return false;
    uint64_t count;
    memcpy(&count, reinterpret_cast<const void *>(log), 8);
    if (count < capacity) {
      uint64_t slot = log + 8 + 8 * count;
      if (!space.requireAccess(slot, 8, PROT_R_ | PROT_W_, what + ": trace log slot", e)) return false;
    }
    return true;
  }
  if (call.fn == RegisterEH() || call.fn == DeregisterEH()) {
    uint64_t start, end;
    if (!ehRange(call, what, start, end, e)) return false;
    if (call.fn == RegisterEH()) {
      uint64_t walked;
      return frames.check(start, end, what, walked, e);
    }
    if (!frames.has(start)) return frames.deregisterFrame(start, end, what, e);
    return true;
  }
  if (call.fn == Fail()) return true;
  return space.requireAccess(call.fn, 1, PROT_X_, what + ": function", e) != nullptr;
}

bool ActionSite::runOne(const WrapperCall &call, const std::string &what, Err &e) {
  if (ignored.count(call.fn)) return true;
  Err check;
  if (!checkLive(call, what, check)) {
    if (check.code == "ERR_SPS_MALFORMED")
      return e.fail("ERR_ACTION_REFUSED", what + " at " + Hex(call.fn) + " was refused: " + check.message);
    e = check;
    return false;
  }
  if (call.fn == RegisterEH() || call.fn == DeregisterEH()) {
    uint64_t start, end;
    memcpy(&start, call.args.data(), 8);
    memcpy(&end, call.args.data() + 8, 8);
    Err fe;
    bool ok = call.fn == RegisterEH() ? frames.registerFrame(start, end, "EH-frame registration", fe) : frames.deregisterFrame(start, end, "EH-frame deregistration", fe);
    if (!ok) return e.fail("ERR_ALLOC_ACTION_FAILED", what + " at " + Hex(call.fn) + " failed: " + fe.message);
    return true;
  }
  using Fn = JitmemWrapperResult (*)(const char *, size_t);
  JitmemWrapperResult out = reinterpret_cast<Fn>(static_cast<uintptr_t>(call.fn))(reinterpret_cast<const char *>(call.args.data()), call.args.size());
  if (out.Size == 0) {
    std::string msg = out.Data.ValuePtr ? std::string(out.Data.ValuePtr) : std::string();
    free(out.Data.ValuePtr);
    if (!msg.empty()) return e.fail("ERR_ALLOC_ACTION_FAILED", what + " at " + Hex(call.fn) + " failed: " + msg);
    return e.fail("ERR_ALLOC_ACTION_FAILED", what + " at " + Hex(call.fn) + " returned an empty result where an SPSError was expected");
  }
  const uint8_t *p = reinterpret_cast<const uint8_t *>(out.Size > sizeof(char *) ? out.Data.ValuePtr : out.Data.Value);
  Reader r(p, out.Size, "result of " + what);
  bool failed = r.boolean();
  std::string message = failed ? r.string() : std::string();
  r.end();
  bool decoded = r.ok();
  std::string decodeError = decoded ? "" : r.error().message;
  if (out.Size > sizeof(char *)) free(out.Data.ValuePtr);
  if (!decoded) return e.fail("ERR_ALLOC_ACTION_FAILED", what + " at " + Hex(call.fn) + " returned a malformed SPSError: " + decodeError);
  if (failed) return e.fail("ERR_ALLOC_ACTION_FAILED", what + " at " + Hex(call.fn) + " failed: " + message);
  return true;
}

bool ActionSite::runFinalize(const std::vector<ActionPair> &actions, std::vector<WrapperCall> &deallocs, Err &e) {
  for (size_t i = 0; i < actions.size(); i++) {
    const ActionPair &p = actions[i];
    if (p.hasFinalize) {
      Err fe;
      if (!runOne(p.finalize, "finalize action " + std::to_string(i), fe)) {
        std::string undo = runDeallocs(deallocs);
        deallocs.clear();
        if (undo.empty()) {
          e = fe;
          return false;
        }
        return e.fail("ERR_ALLOC_ACTION_FAILED", fe.message + "; undoing the earlier actions failed too: " + undo);
      }
    }
    if (p.hasDealloc) deallocs.push_back(p.dealloc);
  }
  return true;
}

std::string ActionSite::runDeallocs(const std::vector<WrapperCall> &deallocs) {
  std::string first;
  for (size_t i = deallocs.size(); i-- > 0;) {
    Err e;
    if (!runOne(deallocs[i], "dealloc action " + std::to_string(i), e) && first.empty()) first = e.wire();
  }
  return first;
}

}  // namespace jitmem
