#include "clang/Basic/DiagnosticOptions.h"
#include "clang/CodeGen/CodeGenAction.h"
#include "clang/Frontend/CompilerInstance.h"
#include "clang/Frontend/CompilerInvocation.h"
#include "clang/Frontend/TextDiagnosticPrinter.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/VirtualFileSystem.h"
#include "llvm/Support/raw_ostream.h"

// jitmem's clang workload: compiles the C file argv[2] to an x86-64 object written to stdout,
// at -O2, position-independent, as `clang -cc1 -emit-obj` does, with clang's resource directory
// argv[1] (its own headers) and the system's headers. A CompilerInstance running EmitObjAction:
// the whole front end, LLVM's O2 pipeline and the X86 back end, in memory.
int main(int argc, char **argv) {
  if (argc < 3) {
    llvm::errs() << "usage: clang-driver RESOURCE_DIR FILE.c > FILE.o\n";
    return 2;
  }
  std::string resourceDir = argv[1];
  std::string builtinHeaders = resourceDir + "/include";
  LLVMInitializeX86TargetInfo();
  LLVMInitializeX86Target();
  LLVMInitializeX86TargetMC();
  LLVMInitializeX86AsmPrinter();
  clang::DiagnosticOptions diagOptions;
  auto *printer = new clang::TextDiagnosticPrinter(llvm::errs(), diagOptions);
  auto vfs = llvm::vfs::getRealFileSystem();
  auto diags = clang::CompilerInstance::createDiagnostics(*vfs, diagOptions, printer);
  const char *args[] = {"-triple", "x86_64-pc-linux-gnu", "-emit-obj", "-O2", "-mrelocation-model", "pic", "-pic-level", "2",
                        "-ffp-contract=off", "-resource-dir", resourceDir.c_str(),
                        "-internal-isystem", builtinHeaders.c_str(),
                        "-internal-externc-isystem", "/usr/include/x86_64-linux-gnu",
                        "-internal-externc-isystem", "/usr/include", "-o", "-", argv[2]};
  auto invocation = std::make_shared<clang::CompilerInvocation>();
  if (!clang::CompilerInvocation::CreateFromArgs(*invocation, args, *diags, argv[0])) return 1;
  clang::CompilerInstance compiler(invocation);
  compiler.createDiagnostics(printer, false);
  clang::EmitObjAction action;
  bool ok = compiler.ExecuteAction(action);
  llvm::outs().flush();
  return ok ? 0 : 1;
}
