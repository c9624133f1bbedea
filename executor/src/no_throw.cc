// The executor is built without exceptions, but libstdc++'s containers and threads still call
// its std::__throw_* helpers on impossible requests (a vector past max_size, allocation
// failure). Defined here, in the program itself, they end the process with a message instead of
// throwing: no C++ exception is ever thrown in the executor (nm -D lists none of libstdc++'s
// throwing helpers as imported).

#include <bits/functexcept.h>

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {
[[noreturn]] void Die(const char *what, const char *detail) {
  fprintf(stderr, "jitmem executor: fatal: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
  fflush(stderr);
  abort();
}
}  // namespace

namespace std {
void __throw_bad_alloc() { Die("out of memory", nullptr); }
void __throw_bad_array_new_length() { Die("bad array length", nullptr); }
void __throw_logic_error(const char *s) { Die("logic error", s); }
void __throw_length_error(const char *s) { Die("length error", s); }
void __throw_system_error(int e) { Die("system error", strerror(e)); }
void __throw_out_of_range_fmt(const char *fmt, ...) { Die("out of range", fmt); }
void __throw_out_of_range(const char *s) { Die("out of range", s); }
void __throw_invalid_argument(const char *s) { Die("invalid argument", s); }
}  // namespace std
