#pragma once
// What the end-to-end tests need to drive real processes over loopback: reserved ports, child
// processes with their output in a file, servers inside the test process, load, HTTP requests with
// deadlines, and waiting on a condition with a deadline (never a fixed sleep).

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace sluice::test {

using namespace std::chrono_literals;

// The deadline for a condition that holds after a few steps of the programs under test (a
// process started, a line logged, a child respawned): generous, because a sanitizer build on
// two busy cores is many times slower than usual; a wait ends as soon as its condition holds.
inline constexpr auto kPatience = 30s;

// A port reserved on `host` for a program the test starts later (a backend that is stopped and
// restarted on the same port, or an address a config must name in advance): a socket bound
// with SO_REUSEADDR that never listens, kept open until the test closes it. The program binds
// the same port with SO_REUSEADDR beside it, while the kernel gives the port to no other
// bind(0), so tests running in parallel cannot take it (binding, closing and reusing the
// number would race). `port` 0: the kernel picks one (returned in `port`). Returns the fd.
int reserve_port(const std::string& host, uint16_t& port);

// The port in the first line of `log` that contains `prefix` followed by an address
// ("127.0.0.1:PORT" or "[::1]:PORT"): how the test learns the port that a program it started
// on port 0 was given. 0 while there is no such line.
uint16_t logged_port(const std::string& log, const std::string& prefix);

// A listening socket on 127.0.0.1 at a port the kernel picks (returned in `port`), for the
// test's own servers. Throws std::runtime_error naming `who` on failure.
int listen_loopback(int backlog, uint16_t& port, const char* who);

// A connected blocking socket to 127.0.0.1:port, or -1. A nonzero `timeout` bounds each
// send and receive on it (SO_SNDTIMEO, SO_RCVTIMEO); 0: they may block for ever.
int connect_loopback(uint16_t port, std::chrono::milliseconds timeout = 0ms);

// The relay the tests' sluice uses: SLUICE_TEST_RELAY ("user", "kernel" or "auto"; unset:
// the config's default, "auto"). tests/CMakeLists.txt runs the suites that move bytes once
// more with it set to "kernel". relay_line() is the config line for it, or "".
std::string relay_line();
// Whether the kernel relay can load here, whatever SLUICE_TEST_RELAY says: `sluice --check`
// on a config with relay = "kernel" passes (it fails when not root, without sockmap...).
// Asked once per test process.
bool kernel_relay_loads();
// True when SLUICE_TEST_RELAY asks for the kernel relay and this machine cannot load it
// (kernel_relay_loads() is false): such a test is skipped, not failed.
bool kernel_relay_missing();
#define SKIP_IF_NO_KERNEL_RELAY()                   \
    if (::sluice::test::kernel_relay_missing())     \
    GTEST_SKIP() << "the kernel relay cannot load " \
                    "here"

// Polls `condition` every 10 ms until it holds or `timeout` passes; returns the last result.
bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout);

// A TCP server on 127.0.0.1 (a port of the kernel's choice) inside the test process: every
// connection gets a thread that runs `serve(fd)`; the socket is closed afterwards. The
// destructor stops accepting, lets each `serve` see stopping() (they poll it at least every
// 100 ms) and joins every thread.
class LoopbackServer {
public:
    LoopbackServer(int backlog, const char* who, std::function<void(int fd)> serve);
    ~LoopbackServer();
    LoopbackServer(const LoopbackServer&) = delete;
    LoopbackServer& operator=(const LoopbackServer&) = delete;

    uint16_t port() const { return port_; }
    bool stopping() const { return stopping_.load(); }

private:
    void accept_loop();

    std::function<void(int fd)> serve_;
    int listen_fd_ = -1;
    uint16_t port_ = 0;
    std::atomic<bool> stopping_{false};
    std::thread acceptor_;
    std::mutex mutex_;
    std::vector<std::thread> connections_;
};

// A fresh directory under /tmp, removed with its files at the end.
class TempDir {
public:
    TempDir();
    ~TempDir();
    const std::string& path() const { return path_; }
    std::string write(const std::string& name, const std::string& content) const;

private:
    std::string path_;
};

std::string read_file(const std::string& path);
// How often `needle` occurs in `text`.
int count_of(const std::string& text, const std::string& needle);

// A child process running `argv`, its stdout and stderr appended to `log_path`.
class Process {
public:
    Process(std::vector<std::string> argv, std::string log_path);
    ~Process();  // SIGTERM, then SIGKILL after 5 s if it is still there
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;

    pid_t pid() const { return pid_; }
    std::string log() const { return read_file(log_path_); }
    void signal(int sig) const;
    // Waits up to `timeout` for the process to exit; its exit status (as from waitpid) or -1.
    int wait_exit(std::chrono::milliseconds timeout);
    bool running();

private:
    pid_t pid_ = -1;
    int status_ = -1;
    std::string log_path_;
};

// Runs a command to completion (bounded by `timeout`); its exit code and output.
struct CommandResult {
    int exit_code = -1;
    std::string output;  // stdout and stderr together
};
CommandResult run_command(std::vector<std::string> argv, std::chrono::milliseconds timeout = 10s);

struct HttpReply {
    bool ok = false;  // a full reply was read
    int status = 0;
    std::string instance;  // X-Instance header
    std::string body;
    std::string raw;
};

// One HTTP/1.1 request on a new connection to host:port (an IPv4 literal) with Connection: close;
// reads until the server closes. Bounded by `timeout`.
HttpReply http_request(uint16_t port, const std::string& method, const std::string& path,
                       const std::string& body = "", std::chrono::milliseconds timeout = 3s,
                       const char* host = "127.0.0.1");

// Sends `request` exactly as given (any method, headers, Host) on a new connection to
// 127.0.0.1:port and reads until the server closes or `timeout` passes: the raw reply, ""
// when none came. `status_of` reads its status (0 when it is not an HTTP/1.1 reply).
std::string http_exchange(uint16_t port, const std::string& request,
                          std::chrono::milliseconds timeout = 10s);
int status_of(const std::string& raw_reply);

// Clients that open a new connection per request (GET /api/spells), back to back, until
// stopped; they count what succeeded (status 200) and what failed. `per_request` bounds each
// request: a test that must show no request is lost under attack on a shared machine gives
// more than the default, since a request a loaded machine serves in 4 s is still served.
// With `expected` (the body every reply must have), replies are also checked byte for byte:
// one cut short of its Content-Length (a process died mid-reply) fails, and a complete 200
// with another body is corrupted(), not ok().
class LoadGenerator {
public:
    LoadGenerator(uint16_t port, int clients, std::chrono::milliseconds per_request = 3s,
                  std::string expected = "");
    ~LoadGenerator() { stop(); }
    void stop();
    long ok() const { return ok_.load(); }
    long failed() const { return failed_.load(); }
    long unavailable() const { return unavailable_.load(); }  // 503s, counted in failed()
    long corrupted() const { return corrupted_.load(); }
    std::string last_failure() const;

private:
    void count(const HttpReply& reply, const std::string& expected);

    std::atomic<bool> stop_{false};
    std::atomic<long> ok_{0}, failed_{0}, unavailable_{0}, corrupted_{0};
    mutable std::mutex mutex_;
    std::string last_failure_;
    std::vector<std::thread> threads_;
};

// The pids of the direct children of `pid` (from /proc).
std::vector<pid_t> children_of(pid_t pid);
bool pid_alive(pid_t pid);
// Open file descriptors of `pid` (only those numbered below `below`, when given), and its
// threads, from /proc; 0 for a process that is gone.
long count_fds(pid_t pid, long below = -1);
long threads_of(pid_t pid);

}  // namespace sluice::test
