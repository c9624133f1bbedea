// `jitmem-executor` (also `jitmem executor`): parse the command line, open the transport, serve
// the session(s), clean up. Exit status 0 when the controller went away (however it went), 1
// when a session ended on a protocol error (said on stderr), 2 for bad flags, 128+N when ended
// by SIGHUP, SIGINT or SIGTERM, after giving back its shared-memory names.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <climits>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "executor.h"

namespace jitmem {
namespace {

const uint64_t kDefaultMaxFrame = 256ull << 20;
const uint64_t kDefaultMaxUnsent = 64ull << 20;
const uint64_t kMinUnsent = 64ull << 10;

const char kUsage[] =
    "usage: jitmem executor [--fds IN,OUT | --listen HOST:PORT|unix:PATH [--allow-remote] [--no-auth] | --connect HOST:PORT|unix:PATH]\n"
    "                       [--sessions N] [--max-frame-size BYTES] [--max-unsent-bytes BYTES]\n"
    "                       [--close-when-idle | --no-close-when-idle]\n"
    "\n"
    "Serves one ORC SimpleRemoteEPC session (LLVM 22 wire protocol) and exits when it ends. A native\n"
    "program (jitmem-executor), as LLVM's llvm-jitlink-executor is; JIT'd programs run in it as in a\n"
    "process of their own.\n"
    "\n"
    "  --fds IN,OUT          read frames from fd IN, write them to fd OUT (default 3,4: the pair a\n"
    "                        controller hands a child it spawns). The executor dies with the process\n"
    "                        that started it\n"
    "  --listen HOST:PORT    accept one TCP connection on HOST (port 0 picks a free port); prints\n"
    "                        \"listening on HOST:PORT\" as the first line of stdout and\n"
    "                        \"token HEX\" as the second: a one-time random token. Whoever connects\n"
    "                        runs code as this user, so the executor first sends a challenge that\n"
    "                        only a holder of the token can answer (ExecutorSession.connect(host,\n"
    "                        port, { token })); a connection that fails it is closed, and the\n"
    "                        executor goes on listening\n"
    "  --no-auth             no token and no challenge: Setup comes first, as llvm-jitlink\n"
    "                        (--oop-executor-connect) expects, and any local process that connects\n"
    "                        first controls the executor\n"
    "  filedescs=IN,OUT, listen=HOST:PORT\n"
    "                        llvm-jitlink-executor's spellings of --fds and --listen\n"
    "  --allow-remote        allow --listen on a host other than loopback\n"
    "  --sessions N          with --listen: serve N connections one after another, each with\n"
    "                        memory of its own (default 1), then exit\n"
    "  --connect HOST:PORT   connect to a controller listening on HOST:PORT\n"
    "  --listen unix:PATH, --connect unix:PATH\n"
    "                        the same over a Unix socket. The socket file is created 0600 (its\n"
    "                        directory, if the executor makes it, 0700) and only processes of this\n"
    "                        user get in (SO_PEERCRED); no token is needed. A directory another\n"
    "                        user owns or can write is refused. A socket file left by an\n"
    "                        executor that died is replaced, one another executor listens on is\n"
    "                        not, nor is a file that is not a socket. The file is removed when the\n"
    "                        executor stops listening, and on SIGTERM, SIGINT and SIGHUP\n"
    "  --max-frame-size N    refuse frames larger than N bytes (default 268435456)\n"
    "  --max-unsent-bytes N  stop reading calls while more than N bytes of results wait unsent (a\n"
    "                        controller that does not read its results), go on once they have left\n"
    "                        (default 67108864, at least 65536). This executor writes each result\n"
    "                        as it is made and reads no call meanwhile, so no more than the\n"
    "                        socket's buffer and one result ever wait, whatever N is\n"
    "  --close-when-idle     close the connection once idle after run_as_main returned and the\n"
    "                        memory was given back: llvm-jitlink 22 never closes a TCP session\n"
    "                        itself (default with --listen and --connect; a jitmem controller is\n"
    "                        never cut off, whatever this says)\n"
    "  --no-close-when-idle  keep the connection until the controller closes it (default with\n"
    "                        --fds: the controller that spawned the executor ends the session)\n"
    "  --self-test-crypto    print the known answers of this executor's SHA-256 and HMAC-SHA256\n"
    "                        (checksums, the token challenge) and exit\n"
    "  -h, --help            show this help\n"
    "\n"
    "exit status:\n"
    "  0        the session ended: the controller closed it or went away\n"
    "  1        the session ended on a protocol error (said on stderr)\n"
    "  2        bad flags (said on stderr); nothing was served\n"
    "  129, 130, 143\n"
    "           ended by SIGHUP, SIGINT or SIGTERM (128 + the signal's number), after giving\n"
    "           back its shared-memory names\n"
    "\n"
    "example: LLVM's llvm-jitlink links and runs a program in this executor over TCP (it cannot\n"
    "answer the token challenge, hence --no-auth)\n"
    "  jitmem executor --listen 127.0.0.1:20000 --no-auth &\n"
    "  llvm-jitlink --oop-executor-connect=127.0.0.1:20000 hello.o\n"
    "(llvm-jitlink 22 from Debian's llvm-22 package; hello.o from 'cc -c -fPIC hello.c'.)\n";

struct Endpoint {
  std::string host;
  int port = -1;
  std::string path;  // Unix socket when non-empty
  bool unix() const { return !path.empty(); }
};

struct Args {
  enum Mode { kFds, kListen, kConnect } mode = kFds;
  int in = 3, out = 4;
  Endpoint endpoint;
  bool allowRemote = false;
  uint64_t maxFrameSize = kDefaultMaxFrame;
  uint64_t maxUnsentBytes = kDefaultMaxUnsent;
  int closeWhenIdle = -1;
  uint64_t sessions = 1;
  bool auth = true;
};

[[noreturn]] void Usage(const char *code, const std::string &message) {
  fprintf(stderr, "jitmem executor: %s [%s]\n", message.c_str(), code);
  exit(2);
}

std::string Quote(const std::string &s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

bool ParseWhole(const std::string &v, uint64_t &out) {
  if (v.empty() || v.size() > 16) return false;
  uint64_t n = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  out = n;
  return n <= kMaxSafe;
}

Endpoint ParseEndpoint(const std::string &flag, const std::string *value) {
  Endpoint ep;
  if (value && value->compare(0, 5, "unix:") == 0) {
    ep.path = value->substr(5);
    if (ep.path.empty() || ep.path.size() > 107)
      Usage("ERR_INVALID_ENDPOINT", flag + " unix:PATH needs a socket path of 1 to 107 bytes; got " + Quote(ep.path));
    ep.host = "unix";
    return ep;
  }
  std::string v = value ? *value : "";
  size_t colon = v.rfind(':');
  std::string host, port;
  if (colon != std::string::npos) {
    host = v.substr(0, colon);
    port = v.substr(colon + 1);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    else if (host.find(':') != std::string::npos || host.find('[') != std::string::npos) host.clear();
  }
  uint64_t p = 0;
  if (!value || host.empty() || port.empty() || port.size() > 5 || !ParseWhole(port, p) || p > 65535)
    Usage("ERR_INVALID_ENDPOINT", flag + " expects HOST:PORT with a port from 0 to 65535 (IPv6 hosts in brackets); got " + Quote(v));
  ep.host = host;
  ep.port = static_cast<int>(p);
  return ep;
}

bool IsLoopback(const std::string &host) {
  if (host == "localhost" || host == "::1") return true;
  in_addr a;
  return inet_pton(AF_INET, host.c_str(), &a) == 1 && host.compare(0, 4, "127.") == 0;
}

Args ParseArgs(int argc, char **argv) {
  Args out;
  std::string modeFlag;
  auto setMode = [&](const std::string &flag, Args::Mode m) {
    if (!modeFlag.empty() && modeFlag != flag) Usage("ERR_CONFLICTING_OPTIONS", flag + " cannot be combined with " + modeFlag + ": an executor serves one transport");
    modeFlag = flag;
    out.mode = m;
  };
  for (int i = 1; i < argc; i++) {
    std::string arg = argv[i];
    if (arg.compare(0, 10, "filedescs=") == 0) arg = "--fds=" + arg.substr(10);
    else if (arg.compare(0, 7, "listen=") == 0) arg = "--listen=" + arg.substr(7);
    std::string flag = arg, inlineValue;
    bool hasInline = false;
    if (arg.compare(0, 2, "--") == 0 && arg.find('=') != std::string::npos) {
      flag = arg.substr(0, arg.find('='));
      inlineValue = arg.substr(arg.find('=') + 1);
      hasInline = true;
    }
    std::string next;
    auto value = [&]() -> const std::string * {
      if (hasInline) return &inlineValue;
      if (i + 1 < argc) {
        next = argv[++i];
        return &next;
      }
      return nullptr;
    };
    if (flag == "--help" || flag == "-h") {
      fputs(kUsage, stdout);
      exit(0);
    } else if (flag == "--fds") {
      setMode(flag, Args::kFds);
      const std::string *v = value();
      size_t comma = v ? v->find(',') : std::string::npos;
      uint64_t a = 0, b = 0;
      if (!v || comma == std::string::npos || !ParseWhole(v->substr(0, comma), a) || !ParseWhole(v->substr(comma + 1), b) || a > 1 << 20 || b > 1 << 20)
        Usage("ERR_INVALID_OPTION", "--fds expects IN,OUT (two file descriptor numbers); got " + Quote(v ? *v : ""));
      out.in = static_cast<int>(a);
      out.out = static_cast<int>(b);
    } else if (flag == "--listen") {
      setMode(flag, Args::kListen);
      out.endpoint = ParseEndpoint(flag, value());
    } else if (flag == "--connect") {
      setMode(flag, Args::kConnect);
      out.endpoint = ParseEndpoint(flag, value());
    } else if (flag == "--allow-remote") {
      out.allowRemote = true;
    } else if (flag == "--max-frame-size") {
      const std::string *v = value();
      uint64_t n;
      if (!v || !ParseWhole(*v, n) || n < 32) Usage("ERR_INVALID_OPTION", "--max-frame-size expects a whole number of bytes >= 32; got " + Quote(v ? *v : ""));
      out.maxFrameSize = n;
    } else if (flag == "--max-unsent-bytes") {
      const std::string *v = value();
      uint64_t n;
      if (!v || !ParseWhole(*v, n) || n < kMinUnsent)
        Usage("ERR_INVALID_OPTION", "--max-unsent-bytes expects a whole number of bytes >= " + std::to_string(kMinUnsent) + "; got " + Quote(v ? *v : ""));
      out.maxUnsentBytes = n;
    } else if (flag == "--no-auth") {
      out.auth = false;
    } else if (flag == "--sessions") {
      const std::string *v = value();
      uint64_t n;
      if (!v || !ParseWhole(*v, n) || n < 1) Usage("ERR_INVALID_OPTION", "--sessions expects a whole number >= 1; got " + Quote(v ? *v : ""));
      out.sessions = n;
    } else if (flag == "--close-when-idle") {
      out.closeWhenIdle = 1;
    } else if (flag == "--no-close-when-idle") {
      out.closeWhenIdle = 0;
    } else {
      Usage("ERR_UNKNOWN_OPTION", "unknown option " + Quote(arg) + " for jitmem executor; see 'jitmem executor --help'");
    }
  }
  if (out.sessions > 1 && out.mode != Args::kListen) Usage("ERR_CONFLICTING_OPTIONS", "--sessions needs --listen: other transports carry one session");
  if (out.mode == Args::kListen && !out.endpoint.unix() && !out.allowRemote && !IsLoopback(out.endpoint.host))
    Usage("ERR_REMOTE_NOT_ALLOWED", "--listen " + out.endpoint.host +
                                        ": not a loopback address. An executor runs whatever code its controller sends; listening beyond this machine needs --allow-remote");
  return out;
}

// ---- Signals -----------------------------------------------------------------------------------

char gSocketPath[128];

void OnStopSignal(int sig) {
  UnlinkTrackedNames();
  if (gSocketPath[0]) unlink(gSocketPath);
  _exit(128 + sig);
}

void InstallSignals() {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = OnStopSignal;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaction(sig, &sa, nullptr);
  // Whatever the starting process ignored, the program gets the default SIGPIPE, as natively.
  signal(SIGPIPE, SIG_DFL);
}

// ---- Transports --------------------------------------------------------------------------------

[[noreturn]] void Fail(const char *code, const std::string &message) {
  fprintf(stderr, "jitmem executor: %s [%s]\n", message.c_str(), code);
  if (gSocketPath[0]) unlink(gSocketPath);
  exit(2);
}

std::string Format(const Endpoint &ep, int port) {
  if (ep.unix()) return "unix:" + ep.path;
  if (ep.host.find(':') != std::string::npos) return "[" + ep.host + "]:" + std::to_string(port);
  return ep.host + ":" + std::to_string(port);
}

// True when a process listens on the Unix socket bound at `path` (/proc/net/unix lists every
// bound socket with its path, listening ones with __SO_ACCEPTCON). Connecting would not do: to a
// listening executor, a connection is its one session.
bool SomeoneListensOn(const std::string &path) {
  FILE *f = fopen("/proc/net/unix", "re");
  if (!f) return true;  // no procfs: assume the worst, and leave the file alone
  char resolved[PATH_MAX];
  std::string wanted = realpath(path.c_str(), resolved) ? resolved : path;
  char line[1024];
  bool found = false;
  fgets(line, sizeof line, f);
  while (!found && fgets(line, sizeof line, f)) {
    char num[64], refs[32], proto[32], flags[32], type[32], st[32], inode[32], p[700];
    p[0] = 0;
    int n = sscanf(line, "%63s %31s %31s %31s %31s %31s %31s %699s", num, refs, proto, flags, type, st, inode, p);
    if (n < 8) continue;
    bool listening = (strtoul(flags, nullptr, 16) & 0x10000) != 0;
    if (!listening) continue;
    if (path == p || wanted == p) found = true;
    else if (realpath(p, resolved) && wanted == resolved) found = true;
  }
  fclose(f);
  return found;
}

// Makes room for a Unix socket: its directory (created 0700 when missing; one another user owns
// or can write is refused: they could swap the socket), and no file in the way.
void PrepareSocketPath(const std::string &path) {
  std::string dir = path.find('/') == std::string::npos ? "." : path.substr(0, path.rfind('/'));
  if (dir.empty()) dir = "/";
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) Fail("ERR_LISTEN_FAILED", "cannot create the socket's directory " + dir + ": " + strerror(errno));
  struct stat ds;
  if (stat(dir.c_str(), &ds) != 0) Fail("ERR_LISTEN_FAILED", "cannot stat the socket's directory " + dir + ": " + strerror(errno));
  if (ds.st_uid != getuid())
    Fail("ERR_UNSAFE_SOCKET_DIR", "cannot listen on unix:" + path + ": its directory " + dir + " belongs to uid " + std::to_string(ds.st_uid) +
                                      ", not to this user (uid " + std::to_string(getuid()) + "), who could replace the socket; use a directory of your own");
  if (ds.st_mode & 022)
    Fail("ERR_UNSAFE_SOCKET_DIR", "cannot listen on unix:" + path + ": its directory " + dir + " can be written by other users (mode " +
                                      std::to_string((ds.st_mode >> 6) & 7) + std::to_string((ds.st_mode >> 3) & 7) + std::to_string(ds.st_mode & 7) +
                                      "), who could replace the socket; use a directory only you can write");
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return;
  if (!S_ISSOCK(st.st_mode)) Fail("ERR_LISTEN_FAILED", "cannot listen on unix:" + path + ": " + path + " exists and is not a socket; it is left alone");
  if (SomeoneListensOn(path)) Fail("ERR_LISTEN_FAILED", "cannot listen on unix:" + path + ": another executor is listening on " + path);
  unlink(path.c_str());
}

int Listen(const Endpoint &ep, int &port) {
  if (ep.unix()) {
    PrepareSocketPath(ep.path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    memcpy(addr.sun_path, ep.path.c_str(), ep.path.size());
    // The socket file is born 0600: no moment in which another user could connect.
    mode_t old = umask(0177);
    int r = bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr);
    int err = errno;
    umask(old);
    if (r != 0) Fail("ERR_LISTEN_FAILED", "cannot listen on " + Format(ep, -1) + ": " + strerror(err));
    snprintf(gSocketPath, sizeof gSocketPath, "%s", ep.path.c_str());
    if (listen(fd, 16) != 0) Fail("ERR_LISTEN_FAILED", "cannot listen on " + Format(ep, -1) + ": " + strerror(errno));
    port = -1;
    return fd;
  }
  addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo *res = nullptr;
  int gai = getaddrinfo(ep.host.c_str(), std::to_string(ep.port).c_str(), &hints, &res);
  if (gai != 0) Fail("ERR_LISTEN_FAILED", "cannot listen on " + Format(ep, ep.port) + ": " + gai_strerror(gai));
  int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 16) != 0) {
    int err = errno;
    freeaddrinfo(res);
    Fail("ERR_LISTEN_FAILED", "cannot listen on " + Format(ep, ep.port) + ": " + strerror(err));
  }
  freeaddrinfo(res);
  sockaddr_storage ss;
  socklen_t len = sizeof ss;
  getsockname(fd, reinterpret_cast<sockaddr *>(&ss), &len);
  port = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6 *>(&ss)->sin6_port : reinterpret_cast<sockaddr_in *>(&ss)->sin_port);
  return fd;
}

bool WriteAll(int fd, const void *p, size_t n) {
  const char *c = static_cast<const char *>(p);
  while (n > 0) {
    ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    c += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// Reads exactly n bytes within timeoutMs; false on EOF, error or timeout.
bool ReadExactly(int fd, uint8_t *p, size_t n, int timeoutMs) {
  while (n > 0) {
    pollfd pfd{fd, POLLIN, 0};
    int r = poll(&pfd, 1, timeoutMs);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    ssize_t got = read(fd, p, n);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;
    p += got;
    n -= static_cast<size_t>(got);
  }
  return true;
}

// The token handshake (protocol/auth.ts): "JMAUTH01" + 32-byte nonce out, then
// HMAC-SHA256(token, "jitmem-controller" || nonce) back within 5 s.
bool ChallengePeer(int fd, const uint8_t token[32]) {
  uint8_t challenge[40];
  memcpy(challenge, "JMAUTH01", 8);
  if (getrandom(challenge + 8, 32, 0) != 32) return false;
  if (!WriteAll(fd, challenge, sizeof challenge)) return false;
  uint8_t answer[32];
  if (!ReadExactly(fd, answer, sizeof answer, 5000)) return false;
  static const char kContext[] = "jitmem-controller";
  uint8_t want[32];
  HmacSha256Two(token, 32, reinterpret_cast<const uint8_t *>(kContext), sizeof kContext - 1, challenge + 8, 32, want);
  uint8_t diff = 0;
  for (int i = 0; i < 32; i++) diff |= static_cast<uint8_t>(want[i] ^ answer[i]);
  return diff == 0;
}

bool PeerIsThisUser(int fd) {
  ucred cred;
  socklen_t len = sizeof cred;
  return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.uid == getuid();
}

int Connect(const Endpoint &ep) {
  if (ep.unix()) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    memcpy(addr.sun_path, ep.path.c_str(), ep.path.size());
    if (connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr) != 0) Fail("ERR_CONNECT_FAILED", "cannot connect to " + Format(ep, -1) + ": " + strerror(errno));
    return fd;
  }
  addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_socktype = SOCK_STREAM;
  addrinfo *res = nullptr;
  int gai = getaddrinfo(ep.host.c_str(), std::to_string(ep.port).c_str(), &hints, &res);
  if (gai != 0) Fail("ERR_CONNECT_FAILED", "cannot connect to " + Format(ep, ep.port) + ": " + gai_strerror(gai));
  int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
    int err = errno;
    freeaddrinfo(res);
    Fail("ERR_CONNECT_FAILED", "cannot connect to " + Format(ep, ep.port) + ": " + strerror(err));
  }
  freeaddrinfo(res);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

}  // namespace
}  // namespace jitmem

using namespace jitmem;

namespace jitmem {
namespace {

// `jitmem-executor --self-test-crypto`: the known answers of the SHA-256 and HMAC-SHA256 of
// this program (the checksums and the token challenge), one "name hex" line each, for a test to
// compare with the published vectors (FIPS 180-4 examples, RFC 4231).
int SelfTestCrypto() {
  auto hex = [](const uint8_t *d) {
    std::string s;
    char b[3];
    for (int i = 0; i < 32; i++) {
      snprintf(b, sizeof b, "%02x", d[i]);
      s += b;
    }
    return s;
  };
  // The hash as the executor uses it (with the CPU's SHA extensions where it has them), then the
  // portable rounds: "sha256-extensions" says which the first lines ran.
  printf("sha256-extensions %s\n", Sha256::shaExtensionsAvailable() ? "yes" : "no");
  for (bool portable : {false, true}) {
    const std::string prefix = portable ? "portable-" : "";
    auto sha = [&](const std::string &name, const std::string &msg, int repeat) {
      Sha256 h(portable);
      for (int i = 0; i < repeat; i++) h.update(msg.data(), msg.size());
      uint8_t d[32];
      h.digest(d);
      printf("%s%s %s\n", prefix.c_str(), name.c_str(), hex(d).c_str());
    };
    sha("sha256-empty", "", 1);
    sha("sha256-abc", "abc", 1);
    sha("sha256-448", "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 1);
    sha("sha256-million-a", "a", 1000000);
    // The same million in one call: 15,625 blocks in one run of the rounds, as a check hashes memory.
    sha("sha256-million-a-at-once", std::string(1000000, 'a'), 1);
  }
  auto hmac = [&](const std::string &name, const std::string &key, const std::string &msg) {
    uint8_t d[32];
    HmacSha256(reinterpret_cast<const uint8_t *>(key.data()), key.size(), reinterpret_cast<const uint8_t *>(msg.data()), msg.size(), d);
    printf("%s %s\n", name.c_str(), hex(d).c_str());
  };
  hmac("hmac-rfc4231-1", std::string(20, '\x0b'), "Hi There");
  hmac("hmac-rfc4231-2", "Jefe", "what do ya want for nothing?");
  hmac("hmac-rfc4231-3", std::string(20, '\xaa'), std::string(50, '\xdd'));
  hmac("hmac-rfc4231-6", std::string(131, '\xaa'), "Test Using Larger Than Block-Size Key - Hash Key First");
  return 0;
}

}  // namespace
}  // namespace jitmem

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "--self-test-crypto") == 0) return SelfTestCrypto();
  Args args = ParseArgs(argc, argv);
  InstallSignals();
  SessionOptions options;
  options.maxFrameSize = args.maxFrameSize;
  options.maxUnsentBytes = args.maxUnsentBytes;
  options.closeWhenIdle = args.closeWhenIdle < 0 ? args.mode != Args::kFds : args.closeWhenIdle == 1;

  // Nothing outlives the controller: one that spawned us (--fds), or `jitmem executor`, which
  // started us for its caller, ends us when it dies, SIGKILL included (SIGTERM: our names and
  // socket file go first). EOF on the channel covers a controller that closed it and lives on.
  bool launched = getenv("JITMEM_EXECUTOR_LAUNCHED") != nullptr;
  unsetenv("JITMEM_EXECUTOR_LAUNCHED");  // the program's own children are not ours
  if (args.mode == Args::kFds || launched) {
    pid_t parent = getppid();
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) return 0;
  }
  if (args.mode == Args::kFds) {
    if (fcntl(args.in, F_GETFD) < 0 || fcntl(args.out, F_GETFD) < 0)
      Fail("ERR_BAD_FD", "cannot use file descriptors " + std::to_string(args.in) + "," + std::to_string(args.out) + " as the transport: " + strerror(errno) +
                             ". Start 'jitmem executor' from a controller, or use --listen/--connect");
    return ServeSession(args.in, args.out, options);
  }
  if (args.mode == Args::kConnect) {
    int fd = Connect(args.endpoint);
    int status = ServeSession(fd, fd, options);
    close(fd);
    return status;
  }
  int port = -1;
  int listener = Listen(args.endpoint, port);
  uint8_t token[32];
  bool challenge = !args.endpoint.unix() && args.auth;
  std::string banner = "listening on " + Format(args.endpoint, port) + "\n";
  if (challenge) {
    if (getrandom(token, sizeof token, 0) != sizeof token) Fail("ERR_LISTEN_FAILED", "no random bytes for the token");
    char hex[65];
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", token[i]);
    banner += std::string("token ") + hex + "\n";
  }
  fputs(banner.c_str(), stdout);
  fflush(stdout);
  int status = 0;
  for (uint64_t i = 0; i < args.sessions; i++) {
    int fd = -1;
    for (;;) {
      fd = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        Fail("ERR_LISTEN_FAILED", std::string("accept failed: ") + strerror(errno));
      }
      if (args.endpoint.unix() && !PeerIsThisUser(fd)) {
        close(fd);
        continue;
      }
      // Until the answer is in, the connection is nobody's: a wrong one is closed and the
      // executor goes on waiting for the right one.
      if (challenge && !ChallengePeer(fd, token)) {
        close(fd);
        continue;
      }
      break;
    }
    // One controller per executor, as llvm-jitlink-executor, unless told to serve more.
    if (i == args.sessions - 1) {
      close(listener);
      listener = -1;
      if (gSocketPath[0]) {
        unlink(gSocketPath);
        gSocketPath[0] = 0;
      }
    }
    if (!args.endpoint.unix()) {
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    int s = ServeSession(fd, fd, options);
    shutdown(fd, SHUT_RDWR);
    close(fd);
    if (s > status) status = s;
  }
  if (listener >= 0) close(listener);
  if (gSocketPath[0]) unlink(gSocketPath);
  return status;
}
