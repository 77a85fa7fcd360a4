#pragma once
// What the end-to-end tests need to drive real processes over loopback: free ports, child
// processes with their output in a file, HTTP requests with deadlines, and waiting on a
// condition with a deadline (never a fixed sleep).

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

// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released).
uint16_t free_port();

// A listening socket on 127.0.0.1 at a port the kernel picks (returned in `port`), for the
// test's own servers. Throws std::runtime_error naming `who` on failure.
int listen_loopback(int backlog, uint16_t& port, const char* who);

// Polls `condition` every 10 ms until it holds or `timeout` passes; returns the last result.
bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout);

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

// Clients that open a new connection per request, back to back, until stopped; they count
// what succeeded (status 200) and what failed.
class LoadGenerator {
public:
    LoadGenerator(uint16_t port, int clients);
    ~LoadGenerator() { stop(); }
    void stop();
    long ok() const { return ok_.load(); }
    long failed() const { return failed_.load(); }
    std::string last_failure() const;

private:
    std::atomic<bool> stop_{false};
    std::atomic<long> ok_{0}, failed_{0};
    mutable std::mutex mutex_;
    std::string last_failure_;
    std::vector<std::thread> threads_;
};

// The pids of the direct children of `pid` (from /proc).
std::vector<pid_t> children_of(pid_t pid);
bool pid_alive(pid_t pid);

}  // namespace sluice::test
