{
  # C++ both targets share: every native/src/*_runtime.cc (N-API-free; runtime.h), compiled
  # into the addon and the executor alike. A new shared file needs no line here.
  "variables": {
    "runtime_sources": ["<!@(ls native/src/*_runtime.cc)"]
  },
  "targets": [
    {
      "target_name": "jitmem_native",
      "sources": ["native/src/addon.cc", "native/src/memory.cc", "native/src/mapped_file.cc", "native/src/shm.cc", "native/src/calls.cc", "native/src/actions.cc", "native/src/dispatch.cc", "native/src/process.cc", "native/src/spawn.cc", "native/src/dylib.cc", "native/src/run_program.cc", "native/src/machine_speed.cc", "<@(runtime_sources)"],
      "include_dirs": ["<!@(node -p \"require('node-addon-api').include\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "_GNU_SOURCE"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-fno-exceptions"],
      "libraries": ["-ldl", "-lrt"]
    },
    {
      # The native executor (`jitmem-executor`): a PIE of its own, libc, libstdc++ and libgcc only.
      # Compiled -fPIC and linked with no copy relocations, so that libc's data (stdout, optarg)
      # stays in libc: a JIT'd PIE object reaches it, and its own code, within 2 GiB.
      "target_name": "jitmem-executor",
      "type": "executable",
      "sources": ["<!@(ls executor/src/*.cc)", "<@(runtime_sources)"],
      "include_dirs": ["native/src"],
      "defines": ["_GNU_SOURCE"],
      "cflags": ["-fPIC"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-fno-exceptions", "-fno-rtti", "-fPIC"],
      "ldflags": ["-pie", "-pthread", "-Wl,-z,nocopyreloc"],
      "libraries": ["-ldl", "-lrt"]
    }
  ]
}
