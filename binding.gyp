{
  "targets": [
    {
      "target_name": "jitmem_native",
      "sources": ["native/src/addon.cc", "native/src/memory.cc", "native/src/shm.cc", "native/src/calls.cc", "native/src/actions.cc", "native/src/dispatch.cc", "native/src/process.cc", "native/src/dylib.cc", "native/src/run_program.cc"],
      "include_dirs": ["<!@(node -p \"require('node-addon-api').include\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "_GNU_SOURCE"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-fno-exceptions"],
      "libraries": ["-ldl", "-lrt"]
    }
  ]
}
