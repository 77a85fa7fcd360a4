#include "harness.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace sluice::test {

using Clock = std::chrono::steady_clock;

int reserve_port(const std::string& host, uint16_t& port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    socklen_t len = sizeof addr;
    if (fd < 0 || ::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1 ||
        ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
        throw std::runtime_error("reserve_port " + host + ":" + std::to_string(port) + ": " +
                                 std::strerror(errno));
    port = ntohs(addr.sin_port);
    return fd;
}

uint16_t logged_port(const std::string& log, const std::string& prefix) {
    for (size_t at = log.find(prefix); at != std::string::npos; at = log.find(prefix, at + 1)) {
        size_t p = at + prefix.size();
        if (p < log.size() && log[p] == '[') p = log.find(']', p);
        p = p == std::string::npos ? p : log.find(':', p);
        const size_t eol = log.find('\n', at);
        if (p == std::string::npos || p > eol) continue;
        const unsigned long port = std::strtoul(log.c_str() + p + 1, nullptr, 10);
        if (port > 0 && port <= 65535) return static_cast<uint16_t>(port);
    }
    return 0;
}

int listen_loopback(int backlog, uint16_t& port, const char* who) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(fd, backlog) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
        throw std::runtime_error(std::string(who) + ": cannot listen");
    port = ntohs(addr.sin_port);
    return fd;
}

int connect_loopback(uint16_t port, std::chrono::milliseconds timeout) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (timeout.count() > 0) {
        timeval tv{static_cast<time_t>(timeout.count() / 1000),
                   static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
        ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
        if (condition()) return true;
        if (Clock::now() >= deadline) return condition();
        std::this_thread::sleep_for(10ms);
    }
}

LoopbackServer::LoopbackServer(int backlog, const char* who, std::function<void(int fd)> serve)
    : serve_(std::move(serve)) {
    listen_fd_ = listen_loopback(backlog, port_, who);
    acceptor_ = std::thread([this] { accept_loop(); });
}

LoopbackServer::~LoopbackServer() {
    stopping_ = true;
    ::shutdown(listen_fd_, SHUT_RDWR);  // this test-local socket is ours alone
    acceptor_.join();
    ::close(listen_fd_);
    std::lock_guard lock(mutex_);
    for (auto& t : connections_) t.join();
}

void LoopbackServer::accept_loop() {
    for (;;) {
        pollfd pfd{listen_fd_, POLLIN, 0};
        ::poll(&pfd, 1, 100);
        if (stopping_) return;
        if (!(pfd.revents & POLLIN)) continue;
        const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) continue;
        std::lock_guard lock(mutex_);
        connections_.emplace_back([this, fd] {
            serve_(fd);
            ::close(fd);
        });
    }
}

TempDir::TempDir() {
    char pattern[] = "/tmp/sluice-test-XXXXXX";
    if (::mkdtemp(pattern) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
}

TempDir::~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
}

std::string TempDir::write(const std::string& name, const std::string& content) const {
    const std::string file = path_ + "/" + name;
    std::ofstream(file, std::ios::binary) << content;
    return file;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

int count_of(const std::string& text, const std::string& needle) {
    int n = 0;
    for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1))
        ++n;
    return n;
}

namespace {
pid_t spawn(const std::vector<std::string>& argv, int output_fd) {
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const pid_t pid = fork();
    if (pid == 0) {
        ::dup2(output_fd, STDOUT_FILENO);
        ::dup2(output_fd, STDERR_FILENO);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, nullptr);
        ::execv(args[0], args.data());
        _exit(127);
    }
    return pid;
}
}  // namespace

Process::Process(std::vector<std::string> argv, std::string log_path)
    : log_path_(std::move(log_path)) {
    const int fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) throw std::runtime_error("cannot open " + log_path_);
    pid_ = spawn(argv, fd);
    ::close(fd);
    if (pid_ < 0) throw std::runtime_error("fork failed");
}

Process::~Process() {
    if (!running()) return;
    signal(SIGTERM);
    if (wait_exit(5s) == -1) {
        ::kill(pid_, SIGKILL);
        wait_exit(5s);
    }
}

void Process::signal(int sig) const {
    if (pid_ > 0) ::kill(pid_, sig);
}

int Process::wait_exit(std::chrono::milliseconds timeout) {
    wait_until([this] { return !running(); }, timeout);
    return running() ? -1 : status_;
}

bool Process::running() {
    if (status_ != -1) return false;
    int status = 0;
    const pid_t rc = ::waitpid(pid_, &status, WNOHANG);
    if (rc == pid_) {
        status_ = status;
        return false;
    }
    return rc == 0;
}

CommandResult run_command(std::vector<std::string> argv, std::chrono::milliseconds timeout) {
    char name[] = "/tmp/sluice-cmd-XXXXXX";
    const int fd = ::mkstemp(name);
    CommandResult result;
    const pid_t pid = spawn(argv, fd);
    ::close(fd);
    int status = 0;
    const bool exited =
        wait_until([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, timeout);
    if (!exited) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
    }
    result.exit_code = exited && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    result.output = read_file(name);
    ::unlink(name);
    return result;
}

HttpReply http_request(uint16_t port, const std::string& method, const std::string& path,
                       const std::string& body, std::chrono::milliseconds timeout,
                       const char* host) {
    HttpReply reply;
    const auto deadline = Clock::now() + timeout;
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    ::inet_pton(AF_INET, host, &addr.sin_addr);
    timeval tv{static_cast<time_t>(timeout.count() / 1000),
               static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        ::close(fd);
        return reply;
    }
    std::string request = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    if (!body.empty())
        request +=
            "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
            "\r\n";
    request += "Connection: close\r\n\r\n" + body;
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(request.size())) {
        ::close(fd);
        return reply;
    }
    char buffer[4096];
    while (Clock::now() < deadline) {
        const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
        if (n <= 0) break;
        reply.raw.append(buffer, static_cast<size_t>(n));
    }
    ::close(fd);
    const auto head_end = reply.raw.find("\r\n\r\n");
    if (reply.raw.compare(0, 9, "HTTP/1.1 ") != 0 || head_end == std::string::npos) return reply;
    reply.status = std::atoi(reply.raw.c_str() + 9);
    const std::string head = reply.raw.substr(0, head_end);
    const auto at = head.find("\r\nX-Instance: ");
    if (at != std::string::npos) {
        const auto start = at + 14;
        reply.instance = head.substr(start, head.find("\r\n", start) - start);
    }
    reply.body = reply.raw.substr(head_end + 4);
    reply.ok = true;
    return reply;
}

std::string http_exchange(uint16_t port, const std::string& request,
                          std::chrono::milliseconds timeout) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    std::string reply;
    const auto deadline = Clock::now() + timeout;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
        ::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(request.size())) {
        char buffer[4096];
        while (Clock::now() < deadline) {
            pollfd p{fd, POLLIN, 0};
            if (::poll(&p, 1, 100) <= 0) continue;
            const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
            if (n <= 0) break;
            reply.append(buffer, static_cast<size_t>(n));
        }
    }
    ::close(fd);
    return reply;
}

int status_of(const std::string& raw_reply) {
    return raw_reply.rfind("HTTP/1.1 ", 0) == 0 ? std::atoi(raw_reply.c_str() + 9) : 0;
}

namespace {

// A reply whose body is shorter than its Content-Length: its sender died between writing
// the headers and the body. A failed request, not corruption (a complete reply, wrong bytes).
bool cut_short(const HttpReply& reply) {
    const std::string name = "\r\nContent-Length:";
    const size_t at = reply.raw.find(name);
    if (at == std::string::npos) return false;
    return std::strtoul(reply.raw.c_str() + at + name.size(), nullptr, 10) > reply.body.size();
}

}  // namespace

LoadGenerator::LoadGenerator(uint16_t port, int clients, std::chrono::milliseconds per_request,
                             std::string expected) {
    for (int i = 0; i < clients; ++i) {
        threads_.emplace_back([this, port, per_request, expected] {
            while (!stop_)
                count(http_request(port, "GET", "/api/spells", "", per_request), expected);
        });
    }
}

void LoadGenerator::count(const HttpReply& reply, const std::string& expected) {
    if (reply.status == 503) ++unavailable_;
    if (reply.status == 200 && (expected.empty() || !cut_short(reply))) {
        if (expected.empty() || reply.body == expected)
            ++ok_;
        else
            ++corrupted_;
        return;
    }
    ++failed_;
    std::lock_guard lock(mutex_);
    last_failure_ = reply.raw.empty() ? "no reply" : reply.raw.substr(0, 200);
}

void LoadGenerator::stop() {
    stop_ = true;
    for (auto& t : threads_) {
        if (t.joinable()) t.join();
    }
}

std::string LoadGenerator::last_failure() const {
    std::lock_guard lock(mutex_);
    return last_failure_;
}

std::vector<pid_t> children_of(pid_t pid) {
    std::vector<pid_t> out;
    const std::string base = "/proc/" + std::to_string(pid) + "/task";
    std::error_code ec;
    for (const auto& task : std::filesystem::directory_iterator(base, ec)) {
        std::istringstream in(read_file(task.path().string() + "/children"));
        pid_t child;
        while (in >> child) out.push_back(child);
    }
    return out;
}

bool pid_alive(pid_t pid) {
    // A zombie still exists but runs no more; it counts as gone.
    const std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
    if (stat.empty()) return false;
    const auto close = stat.rfind(')');
    return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] != 'Z';
}

long count_fds(pid_t pid, long below) {
    long n = 0;
    std::error_code ec;
    for (const auto& entry :
         std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
        if (below < 0 || std::stol(entry.path().filename().string()) < below) ++n;
    }
    return n;
}

long threads_of(pid_t pid) {
    std::istringstream in(read_file("/proc/" + std::to_string(pid) + "/status"));
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("Threads:", 0) == 0) return std::stol(line.substr(8));
    return 0;
}

std::string relay_line() {
    const char* relay = std::getenv("SLUICE_TEST_RELAY");
    if (relay == nullptr || *relay == '\0') return "";
    return std::string("relay = \"") + relay + "\"\n";
}

bool kernel_relay_loads() {
    static const bool loads = [] {
        TempDir dir;
        const std::string config =
            dir.write("check.toml", "relay = \"kernel\"\n[[targets]]\naddress = \"127.0.0.1:1\"\n");
        return run_command({SLUICE_BIN, "--check", "--config", config}).exit_code == 0;
    }();
    return loads;
}

bool kernel_relay_missing() {
    const char* relay = std::getenv("SLUICE_TEST_RELAY");
    return relay != nullptr && std::string(relay) == "kernel" && !kernel_relay_loads();
}

}  // namespace sluice::test
